from flask_login import current_user

from hub.api import blueprint, created, load_json, page_of, pagination
from hub.auth.permissions import Permission
from hub.http.access import access
from hub.http.request import db
from hub.schemas.directory import OrganisationIn, OrganisationOut
from hub.services import directory


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
