"""Issue 16, item 6: the IDEL says which communes she serves at home and which days she works, from « Mon profil »
and the API; the coordinator's suggestions follow."""

from sqlalchemy import select

from hub.models import AuditEvent, Profession
from tests import factories
from tests.api.test_patients_api import assert_problem

VERGT, CHALAGNAC, COURSAC = "24571", "24094", "24139"


def idel(db_session, cpts):
    return factories.clinician(db_session, cpts, Profession.NURSE, commune_insee=VERGT)


def test_the_idel_reads_and_sets_her_area_through_the_api(api_as, db_session, cpts):
    user = idel(db_session, cpts)
    api = api_as(user)
    before = api.get("/api/v1/me/service-area")
    assert before.status_code == 200, before.json
    assert before.json == {
        "practice_commune": VERGT,
        "practice_commune_name": "Vergt",
        "communes": [],
        "days": [1, 2, 3, 4, 5, 6, 7],
    }
    saved = api.put("/api/v1/me/service-area", json={"communes": [COURSAC, CHALAGNAC, VERGT], "days": [5, 1, 2]})
    assert saved.status_code == 200, saved.json
    assert saved.json["communes"] == [
        {"insee": CHALAGNAC, "name": "Chalagnac"},
        {"insee": COURSAC, "name": "Coursac"},
    ], "by name, the practice's commune implied"
    assert saved.json["days"] == [1, 2, 5]
    db_session.expire_all()
    professional = user.professional
    assert (professional.served_communes, professional.working_days) == (f"{CHALAGNAC} {COURSAC}", "125")
    assert professional.serves(COURSAC) and professional.works_on(5) and not professional.works_on(3)
    audited = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "professional.service_area")).all()
    assert len(audited) == 1


def test_bad_input_is_refused_and_nothing_changes(api_as, db_session, cpts):
    user = idel(db_session, cpts)
    api = api_as(user)
    for body, field in (
        ({"communes": ["75056"], "days": [1]}, "communes"),  # Paris: not in the territory's data set
        ({"communes": [], "days": []}, "days"),
        ({"communes": [], "days": [8]}, "days"),
        ({"communes": [VERGT]}, "days"),
        ({"communes": [], "days": [1], "served_communes": "x"}, "served_communes"),
    ):
        refused = assert_problem(api.put("/api/v1/me/service-area", json=body), 422)
        assert any(name.split(".")[0] == field for name in refused["errors"]), (body, refused)
    db_session.expire_all()
    assert (user.professional.served_communes, user.professional.working_days) == ("", "1234567")


def test_a_coordinator_or_an_admin_has_no_service_area(api_as, db_session, cpts, coordinator, admin):
    for user in (coordinator, admin):
        assert_problem(api_as(user).get("/api/v1/me/service-area"), 403)
        assert_problem(api_as(user).put("/api/v1/me/service-area", json={"communes": [], "days": [1]}), 403)


def test_the_idel_sets_her_area_from_her_profile_page(client, auth, db_session, cpts):
    user = idel(db_session, cpts)
    auth.login(user)
    profile = client.get("/me")
    assert "Ma zone d'intervention" in profile.get_data(as_text=True)
    page = client.get("/me/service-area")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'value="24094"' in html and ">Chalagnac<" in html and "Lundi" in html
    refused = auth.post("/me/service-area", data={"communes": [CHALAGNAC]})
    assert refused.status_code == 422
    assert "Cochez au moins un jour travaillé." in refused.get_data(as_text=True)
    unknown = auth.post("/me/service-area", data={"communes": ["75056"], "days": ["1"]})
    assert unknown.status_code == 422
    assert 'id="e-communes">Commune inconnue du territoire.' in unknown.get_data(as_text=True)
    db_session.expire_all()
    assert (user.professional.served_communes, user.professional.working_days) == ("", "1234567")
    done = auth.post("/me/service-area", data={"communes": [CHALAGNAC, COURSAC], "days": ["1", "3"]})
    assert done.status_code == 302
    db_session.expire_all()
    assert (user.professional.served_communes, user.professional.working_days) == (f"{CHALAGNAC} {COURSAC}", "13")
    summary = client.get("/me").get_data(as_text=True)
    assert "Jours travaillés : lundi, mercredi." in summary and "Vergt, Chalagnac, Coursac" in summary
    one_box = auth.post("/me/service-area", data={"days": "2"})
    assert one_box.status_code == 302
    db_session.expire_all()
    assert (user.professional.served_communes, user.professional.working_days) == ("", "2")
