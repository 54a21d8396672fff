from flask import current_app
from flask_login import current_user

from hub.api import blueprint, created, load_json, page_of, pagination
from hub.auth.permissions import Permission
from hub.http.access import access
from hub.http.request import db
from hub.schemas.account import LoginSettingsIn, LoginSettingsOut
from hub.schemas.directory import OrganisationIn, OrganisationOut
from hub.services import directory, psc


@blueprint.get("/organisations")
@access(Permission.ORGANISATIONS_READ)
def list_organisations():
    page, per_page = pagination()
    rows, total = directory.list_organisations(db(), current_user.cpts_id, page=page, per_page=per_page)
    return page_of(OrganisationOut(), rows, total, page, per_page)


@blueprint.post("/organisations")
@access(Permission.ORGANISATIONS_MANAGE)
def create_organisation():
    organisation = directory.create_organisation(db(), current_user, load_json(OrganisationIn()))
    return created(OrganisationOut().dump(organisation), "api.get_organisation", organisation_id=organisation.id)


@blueprint.get("/organisations/<int:organisation_id>")
@access(Permission.ORGANISATIONS_READ)
def get_organisation(organisation_id: int):
    return OrganisationOut().dump(directory.get_organisation(db(), current_user.cpts_id, organisation_id))


@blueprint.patch("/organisations/<int:organisation_id>")
@access(Permission.ORGANISATIONS_MANAGE)
def update_organisation(organisation_id: int):
    organisation = directory.get_organisation(db(), current_user.cpts_id, organisation_id)
    changes = load_json(OrganisationIn(), partial=True)
    return OrganisationOut().dump(directory.update_organisation(db(), current_user, organisation, changes))


# The CPTS's login settings: whether its professionals who have Pro Santé Connect may still use a password.


def _login_settings() -> dict:
    enabled = bool(current_app.config["HUB"]["PSC_ENABLED"])
    return LoginSettingsOut().dump(psc.login_settings(db(), current_user.cpts_id, psc_enabled=enabled))


@blueprint.get("/login-settings")
@access(Permission.USERS_MANAGE)
def get_login_settings():
    return _login_settings()


@blueprint.put("/login-settings")
@access(Permission.USERS_MANAGE)
def update_login_settings():
    data = load_json(LoginSettingsIn())
    psc.set_password_refused_to_psc_users(
        db(), current_user, current_user.cpts_id, refused=data["password_refused_to_psc_users"]
    )
    return _login_settings()
