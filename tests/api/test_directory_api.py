from sqlalchemy import func, select

from hub.models import Organisation, Professional
from tests import factories
from tests.api.test_patients_api import assert_problem

NEW_NURSE = {
    "rpps": "10003655320",
    "last_name": "Delmas",
    "first_name": "Sophie",
    "profession": "infirmier",
    "mssante_address": "sophie.delmas@infirmier.mssante.fr",
    "phone": "0612345678",
    "commune_insee": "24571",
}


def test_admin_creates_and_updates_a_professional(api_as, admin):
    client = api_as(admin)
    created = client.post("/api/v1/professionals", json=NEW_NURSE)
    assert created.status_code == 201, created.get_json()
    url = created.headers["Location"]
    updated = client.patch(url, json={"does_telesoin": True}).get_json()
    assert updated["does_telesoin"] is True


def test_bad_rpps_key_is_refused_and_nothing_saved(api_as, admin, db_session):
    before = db_session.scalar(select(func.count()).select_from(Professional))
    body = assert_problem(api_as(admin).post("/api/v1/professionals", json=NEW_NURSE | {"rpps": "10003655321"}), 422)
    assert "clé de contrôle" in body["errors"]["rpps"]
    assert db_session.scalar(select(func.count()).select_from(Professional)) == before


def test_specialist_needs_a_specialty_and_duplicate_rpps_is_refused(api_as, admin):
    client = api_as(admin)
    body = assert_problem(
        client.post("/api/v1/professionals", json=NEW_NURSE | {"profession": "medecin_specialiste"}), 422
    )
    assert "spécialité" in body["errors"]["specialty"]
    client.post("/api/v1/professionals", json=NEW_NURSE)
    body = assert_problem(client.post("/api/v1/professionals", json=NEW_NURSE), 422)
    assert "déjà enregistré" in body["errors"]["rpps"]


def test_professional_cannot_manage_the_directory(api_as, nurse):
    assert_problem(api_as(nurse).post("/api/v1/professionals", json=NEW_NURSE), 403)
    assert api_as(nurse).get("/api/v1/professionals").status_code == 200


def test_directory_is_per_cpts(api_as, nurse, db_session):
    stranger = factories.professional(db_session, factories.cpts(db_session))
    assert_problem(api_as(nurse).get(f"/api/v1/professionals/{stranger.id}"), 404)
    ids = [p["id"] for p in api_as(nurse).get("/api/v1/professionals?per_page=200").get_json()["items"]]
    assert stranger.id not in ids


def test_organisations(api_as, admin, db_session):
    client = api_as(admin)
    created = client.post(
        "/api/v1/organisations", json={"name": "Pharmacie de Vergt", "kind": "pharmacy", "commune_insee": "24571"}
    )
    assert created.status_code == 201
    assert_problem(client.post("/api/v1/organisations", json={"name": "Autre CPTS", "kind": "cpts"}), 422)
    before = db_session.scalar(select(func.count()).select_from(Organisation))
    assert_problem(client.post("/api/v1/organisations", json={"name": "X", "kind": "pharmacy", "finess": "12"}), 422)
    wrong_key = {"name": "X", "kind": "pharmacy", "finess": "240012345"}  # I5: the Luhn key is 4
    assert (
        "clé de contrôle"
        in assert_problem(client.post("/api/v1/organisations", json=wrong_key), 422)["errors"]["finess"]
    )
    assert db_session.scalar(select(func.count()).select_from(Organisation)) == before
    names = [o["name"] for o in client.get("/api/v1/organisations").get_json()["items"]]
    assert "Pharmacie de Vergt" in names


def test_openapi_document_lists_every_api_route(client, app):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint != "api.openapi_document":
            path = rule.rule.removeprefix("/api/v1").replace("<int:", "{").replace(">", "}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (path, method.lower()) in documented


def test_the_cpts_cannot_change_kind(api_as, admin, cpts):
    body = assert_problem(api_as(admin).patch(f"/api/v1/organisations/{cpts.id}", json={"kind": "pharmacy"}), 422)
    assert "CPTS" in body["errors"]["kind"]
