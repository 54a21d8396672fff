import re

import pytest
from sqlalchemy import func, select

from hub.models import (
    Organisation,
    OrganisationKind,
    Professional,
    Role,
    User,
    UserSession,
)
from hub.services import accounts
from tests import factories


@pytest.fixture
def other_cpts(db_session):
    return factories.cpts(db_session)


def count(db_session, model) -> int:
    return db_session.scalar(select(func.count()).select_from(model))


def field_error(body: str, name: str) -> str:
    found = re.search(rf'<div class="field-error" id="e-{re.escape(name)}">([^<]*)</div>', body)
    return found.group(1) if found else ""


def bad_rpps_key() -> str:
    rpps = factories.valid_rpps()
    return rpps[:-1] + str((int(rpps[-1]) + 1) % 10)


@pytest.mark.parametrize(
    "url", ["/admin", "/admin/organisations", "/admin/professionals/new", "/admin/users", "/admin/users/new"]
)
def test_professional_cannot_reach_admin_pages(auth, db_session, cpts, url):
    auth.login(factories.user(db_session, cpts, Role.PROFESSIONAL))
    response = auth.client.get(url)
    assert response.status_code == 403
    assert "Votre rôle ne permet pas cette action." in response.get_data(as_text=True)


def test_professional_cannot_post_to_admin_actions(auth, db_session, cpts, admin):
    auth.login(factories.user(db_session, cpts, Role.PROFESSIONAL))
    assert auth.post(f"/admin/users/{admin.id}/deactivate").status_code == 403
    db_session.refresh(admin)
    assert admin.is_active


def test_dashboard(auth, admin):
    auth.login(admin)
    body = auth.client.get("/admin").get_data(as_text=True)
    assert "Administration de la CPTS" in body
    assert "/admin/organisations" in body and "/admin/users" in body and "/admin/professionals/new" in body


# --- structures ------------------------------------------------------------------------------------------


def test_organisations_list_and_create(auth, db_session, cpts, admin):
    existing = factories.organisation(db_session, cpts, name="Pharmacie du Marché")
    db_session.commit()
    auth.login(admin)
    body = auth.client.get("/admin/organisations").get_data(as_text=True)
    assert existing.name in body and "Officine" in body
    assert '<option value="cpts"' not in body, "a CPTS is not created from another"

    response = auth.post(
        "/admin/organisations",
        {"name": "MSP des Coteaux", "kind": "msp", "finess": "240012344", "commune_insee": "24037"},
    )
    assert response.status_code == 302
    created = db_session.scalar(select(Organisation).where(Organisation.name == "MSP des Coteaux"))
    assert created.cpts_id == cpts.id and created.kind is OrganisationKind.MSP and created.finess == "240012344"
    assert "Structure « MSP des Coteaux » créée." in auth.client.get("/admin/organisations").get_data(as_text=True)


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"name": "Cabinet", "kind": "practice", "finess": "12"}, "finess", "Le numéro FINESS doit comporter"),
        ({"name": "Cabinet", "kind": "practice", "finess": "240012345"}, "finess", "clé de contrôle"),  # I5
        ({"name": "Cabinet", "kind": "practice", "commune_insee": "00000"}, "commune_insee", "n&#39;existe pas"),  # I5
        ({"name": "Autre CPTS", "kind": "cpts"}, "kind", "Une CPTS ne peut pas être créée"),
        ({"kind": "practice"}, "name", "Ce champ est obligatoire."),
    ],
)
def test_bad_organisation_is_refused(auth, db_session, admin, form, field, message):
    auth.login(admin)
    before = count(db_session, Organisation)
    response = auth.post("/admin/organisations", form)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert count(db_session, Organisation) == before


def test_edit_organisation(auth, db_session, cpts, admin):
    organisation = factories.organisation(db_session, cpts, name="Pharmacie Centrale")
    db_session.commit()
    auth.login(admin)
    url = f"/admin/organisations/{organisation.id}/edit"
    body = auth.client.get(url).get_data(as_text=True)
    assert 'value="Pharmacie Centrale"' in body and '<option value="pharmacy" selected>' in body
    assert auth.post(url, {"name": "Pharmacie de la Gare", "kind": "pharmacy", "finess": ""}).status_code == 302
    db_session.refresh(organisation)
    assert organisation.name == "Pharmacie de la Gare"
    assert auth.post(url, {"name": "Pharmacie", "kind": "pharmacy", "finess": "1"}).status_code == 422


def test_another_cpts_organisation_is_not_found(auth, db_session, admin, other_cpts):
    foreign = factories.organisation(db_session, other_cpts, name="Ailleurs")
    db_session.commit()
    auth.login(admin)
    url = f"/admin/organisations/{foreign.id}/edit"
    assert auth.client.get(url).status_code == 404
    assert auth.post(url, {"name": "Pris", "kind": "pharmacy"}).status_code == 404
    assert auth.client.get(f"/admin/organisations/{other_cpts.id}/edit").status_code == 404
    db_session.refresh(foreign)
    assert foreign.name == "Ailleurs"


# --- professionals ---------------------------------------------------------------------------------------


def professional_form(**overrides) -> dict:
    values = {
        "last_name": "Lemaître",
        "first_name": "Anne",
        "profession": "infirmier",
        "rpps": factories.valid_rpps(),
        "mssante_address": "anne.lemaitre@idel.mssante.fr",
        "phone": "0553000000",
        "is_active": "true",
        "does_telesoin": "true",
    }
    return values | overrides


def test_create_professional(auth, db_session, cpts, admin):
    msp = factories.organisation(db_session, cpts, kind=OrganisationKind.MSP)
    db_session.commit()
    auth.login(admin)
    form = auth.client.get("/admin/professionals/new").get_data(as_text=True)
    assert f'name="organisation_ids" value="{msp.id}"' in form and f'value="{cpts.id}"' in form
    response = auth.post("/admin/professionals/new", professional_form(organisation_ids=[str(msp.id)]))
    assert response.status_code == 302
    created = db_session.scalar(select(Professional).where(Professional.last_name == "Lemaître"))
    assert response.headers["Location"] == f"/professionals/{created.id}"
    assert created.cpts_id == cpts.id and created.does_telesoin and not created.accompanies_teleconsultation
    assert [o.id for o in created.organisations] == [msp.id]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"rpps": "bad"}, "rpps", "Le numéro RPPS doit comporter 11 chiffres."),
        ({"rpps": None}, "rpps", "Le numéro RPPS est invalide : sa clé de contrôle ne correspond pas."),
        ({"profession": "medecin_specialiste"}, "specialty", "Indiquez la spécialité"),
        ({"mssante_address": "anne@gmail.com"}, "mssante_address", "L&#39;adresse MSSanté doit être"),
    ],
)
def test_bad_professional_is_refused(auth, db_session, admin, overrides, field, message):
    auth.login(admin)
    if overrides.get("rpps", "") is None:
        overrides = {"rpps": bad_rpps_key()}
    before = count(db_session, Professional)
    response = auth.post("/admin/professionals/new", professional_form(**overrides))
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in field_error(body, field)
    assert 'value="Lemaître"' in body
    assert count(db_session, Professional) == before


def test_edit_professional_unticks_and_deactivates(auth, db_session, cpts, admin):
    msp = factories.organisation(db_session, cpts, kind=OrganisationKind.MSP)
    nurse = factories.professional(db_session, cpts, does_telesoin=True, organisations=[msp])
    db_session.commit()
    auth.login(admin)
    url = f"/admin/professionals/{nurse.id}/edit"
    body = auth.client.get(url).get_data(as_text=True)
    assert f'value="{nurse.rpps}"' in body and 'id="f-does_telesoin" name="does_telesoin" value="true" checked' in body
    form = {"last_name": nurse.last_name, "first_name": nurse.first_name, "profession": "infirmier", "rpps": nurse.rpps}
    assert auth.post(url, form | {"is_active": "false"}).status_code == 302
    db_session.refresh(nurse)
    assert not nurse.does_telesoin and not nurse.is_active and nurse.organisations == []


def test_another_cpts_professional_is_not_found(auth, db_session, admin, other_cpts):
    foreign = factories.professional(db_session, other_cpts)
    db_session.commit()
    auth.login(admin)
    url = f"/admin/professionals/{foreign.id}/edit"
    assert auth.client.get(url).status_code == 404
    assert auth.post(url, professional_form(rpps=foreign.rpps)).status_code == 404


def test_organisation_of_another_cpts_cannot_be_ticked(auth, db_session, admin, other_cpts):
    foreign = factories.organisation(db_session, other_cpts)
    db_session.commit()
    auth.login(admin)
    response = auth.post("/admin/professionals/new", professional_form(organisation_ids=[str(foreign.id)]))
    assert response.status_code == 422
    assert "Structure inconnue dans la CPTS." in field_error(response.get_data(as_text=True), "organisation_ids")


# --- accounts --------------------------------------------------------------------------------------------


def test_users_list(auth, db_session, cpts, admin, other_cpts):
    coordinator = factories.user(db_session, cpts, Role.COORDINATOR, display_name="Claire Coordination")
    deactivated = factories.user(db_session, cpts, Role.PROFESSIONAL, is_active=False)
    foreign = factories.user(db_session, other_cpts, Role.ADMIN)
    db_session.commit()
    auth.login(admin)
    body = auth.client.get("/admin/users").get_data(as_text=True)
    assert coordinator.login in body and "Claire Coordination" in body and "Coordinateur·rice" in body
    assert deactivated.login in body and "Désactivé" in body
    assert foreign.login not in body


def test_create_user(auth, db_session, cpts, admin):
    nurse = factories.professional(db_session, cpts, last_name="Sanslogin")
    taken = factories.user(db_session, cpts, Role.PROFESSIONAL)
    db_session.commit()
    auth.login(admin)
    form = auth.client.get("/admin/users/new").get_data(as_text=True)
    assert f'<option value="{nurse.id}">' in form and f'<option value="{taken.professional_id}">' not in form
    response = auth.post(
        "/admin/users/new",
        {
            "login": "A.Sanslogin",
            "display_name": "Anne Sanslogin",
            "password": "un mot de passe long",
            "roles": "professional",
            "professional_id": str(nurse.id),
        },
    )
    assert response.status_code == 302
    created = db_session.scalar(select(User).where(User.login == "a.sanslogin"))
    assert response.headers["Location"] == f"/admin/users/{created.id}"
    assert created.roles == {Role.PROFESSIONAL} and created.professional_id == nurse.id
    assert created.cpts_id == cpts.id and created.totp_secret is None
    page = auth.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "À activer à la prochaine connexion" in page and "la double authentification sera activée" in page


def test_several_roles_are_kept(auth, db_session, admin):
    auth.login(admin)
    form = {"login": "double", "display_name": "D", "password": "x" * 12, "roles": ["admin", "coordinator"]}
    assert auth.post("/admin/users/new", form).status_code == 302
    assert db_session.scalar(select(User).where(User.login == "double")).roles == {Role.ADMIN, Role.COORDINATOR}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"password": "court"}, "password", "au moins 12 caractères"),
        ({"roles": None}, "roles", "Choisissez au moins un rôle."),
        ({"roles": "professional"}, "professional_id", "doit être lié à sa fiche"),
        ({"login": ""}, "login", "Ce champ est obligatoire."),
    ],
)
def test_bad_user_is_refused(auth, db_session, admin, overrides, field, message):
    auth.login(admin)
    before = count(db_session, User)
    form = {"login": "nouveau", "display_name": "Nouveau", "password": "un mot de passe long", "roles": "coordinator"}
    form = {key: value for key, value in (form | overrides).items() if value is not None}
    response = auth.post("/admin/users/new", form)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in field_error(body, field)
    assert "un mot de passe long" not in body, "a password is never sent back"
    assert count(db_session, User) == before


def test_user_actions(auth, db_session, cpts, admin):
    target = factories.user(db_session, cpts, Role.COORDINATOR)
    accounts.start_session(db_session, target)
    db_session.commit()
    auth.login(admin)
    base = f"/admin/users/{target.id}"
    body = auth.client.get(base).get_data(as_text=True)
    assert target.login in body and "Désactiver le compte" in body

    assert auth.post(f"{base}/deactivate").status_code == 302
    db_session.refresh(target)
    assert not target.is_active
    live = select(UserSession).where(UserSession.user_id == target.id, UserSession.ended_at.is_(None))
    assert db_session.scalars(live).all() == []
    assert "Réactiver le compte" in auth.client.get(base).get_data(as_text=True)

    assert auth.post(f"{base}/reactivate").status_code == 302
    db_session.refresh(target)
    assert target.is_active

    assert auth.post(f"{base}/reset-totp").status_code == 302
    db_session.refresh(target)
    assert target.totp_secret is None

    old_hash = target.password_hash
    response = auth.post(f"{base}/password", {"password": "trop court"})
    assert response.status_code == 422
    assert "au moins 12 caractères" in field_error(response.get_data(as_text=True), "password")
    assert auth.post(f"{base}/password", {"password": "un tout nouveau mot de passe"}).status_code == 302
    db_session.refresh(target)
    assert target.password_hash != old_hash


def test_own_account_offers_no_lock_out_buttons(auth, admin):
    auth.login(admin)
    body = auth.client.get(f"/admin/users/{admin.id}").get_data(as_text=True)
    assert "Désactiver le compte" not in body and "Réinitialiser la double authentification" not in body
    assert "votre propre compte" in body


def test_another_cpts_user_is_not_found(auth, db_session, admin, other_cpts):
    foreign = factories.user(db_session, other_cpts, Role.ADMIN)
    db_session.commit()
    auth.login(admin)
    base = f"/admin/users/{foreign.id}"
    assert auth.client.get(base).status_code == 404
    for action in ("deactivate", "reactivate", "reset-totp"):
        assert auth.post(f"{base}/{action}").status_code == 404, action
    assert auth.post(f"{base}/password", {"password": "un tout nouveau mot de passe"}).status_code == 404
    db_session.refresh(foreign)
    assert foreign.is_active and foreign.totp_secret is not None


def test_coordinator_manages_nothing(auth, db_session, cpts):
    coordinator = factories.coordinator(db_session, cpts)
    db_session.commit()
    auth.login(coordinator)
    assert auth.client.get("/admin/users").status_code == 403
    assert auth.post("/admin/organisations", {"name": "X", "kind": "msp"}).status_code == 403
