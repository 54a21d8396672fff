import datetime as dt

import pytest
from sqlalchemy import func, select

from hub.models import AuditEvent, EligibilityAssessment, PathwayTemplate
from tests import factories
from tests.factories import ELIGIBLE_ANSWERS

# The favourable checklist of the factories, for a télésoin, without the kind of act (it is optional here).
ANSWERS = {"modality": "telesoin"} | {key: value for key, value in ELIGIBLE_ANSWERS.items() if key != "act_kind"}


def last_audit(session):
    return session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()


def shipped_id(session, code="insuffisance_cardiaque") -> int:
    return session.scalar(
        select(PathwayTemplate.id).where(PathwayTemplate.cpts_id.is_(None), PathwayTemplate.code == code)
    )


@pytest.fixture
def patient(db_session, cpts, gp):
    return factories.patient(db_session, cpts, attending_gp_id=gp.professional_id, birth_date=dt.date(1980, 1, 1))


def start(api, session, patient):
    body = {"patient_id": patient.id, "template_id": shipped_id(session), "started_on": "2026-12-01"}
    return api.post("/api/v1/pathways", json=body)


def test_the_gp_starts_reads_skips_and_stops_a_pathway(api_as, gp, db_session, patient):
    api = api_as(gp)
    response = start(api, db_session, patient)
    assert response.status_code == 201, response.json
    pathway = response.json
    assert [s["due_on"] for s in pathway["steps"]][:2] == ["2026-12-01", "2026-12-15"]
    assert response.headers["Location"].endswith(f"/api/v1/pathways/{pathway['id']}")
    url = f"/api/v1/pathways/{pathway['id']}"
    assert api.get(url).json["template_name"] == "Suivi de l'insuffisance cardiaque"
    step_id = pathway["steps"][2]["id"]
    refused = api.post(f"{url}/steps/{step_id}/skip", json={})
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
    skipped = api.post(f"{url}/steps/{step_id}/skip", json={"reason": "Non demandée"})
    assert skipped.status_code == 200 and skipped.json["steps"][2]["state"] == "skipped"
    again = api.post(f"{url}/steps/{step_id}/skip", json={"reason": "Encore"})
    assert again.status_code == 409 and again.json["type"].endswith("invalid-transition")
    stopped = api.post(f"{url}/stop", json={"reason": "Déménagement"})
    assert stopped.json["state"] == "stopped"
    listed = api.get(f"/api/v1/pathways?patient_id={patient.id}")
    assert listed.json["total"] == 1


def test_a_professional_without_care_relation_gets_404_audited(api_as, gp, nurse, db_session, patient):
    pathway_id = start(api_as(gp), db_session, patient).json["id"]
    stranger = api_as(nurse)
    for response in (
        stranger.get(f"/api/v1/pathways/{pathway_id}"),
        stranger.post(f"/api/v1/pathways/{pathway_id}/stop", json={"reason": "x"}),
        stranger.get(f"/api/v1/pathways?patient_id={patient.id}"),
        start(stranger, db_session, patient),
        stranger.get(f"/api/v1/patients/{patient.id}/eligibility"),
        stranger.post(f"/api/v1/patients/{patient.id}/eligibility", json=ANSWERS),
    ):
        assert response.status_code == 404
        event = last_audit(db_session)
        assert event.outcome != "success" and event.actor_user_id == nurse.id


def test_eligibility_is_posted_then_read(api_as, gp, db_session, patient):
    api = api_as(gp)
    url = f"/api/v1/patients/{patient.id}/eligibility"
    assert api.get(url).status_code == 404
    incomplete = api.post(url, json={"modality": "telesoin", "profession": "infirmier"})
    assert incomplete.status_code == 422 and incomplete.json["errors"]["can_use_tools"] == "Répondez à cette question."
    assert db_session.scalar(select(func.count()).select_from(EligibilityAssessment)) == 0
    ineligible = api.post(url, json=ANSWERS | {"needs_direct_contact": True, "alternative": "in_person"})
    assert ineligible.status_code == 201 and ineligible.json["outcome"] == "ineligible"
    latest = api.get(url + "?modality=telesoin").json
    assert latest["alternative"] == "in_person" and latest["reasons"]


def test_templates_are_listed_and_an_admin_copies_and_edits_one(api_as, admin, gp, db_session):
    listed = api_as(gp).get("/api/v1/pathway-templates").json
    assert listed["total"] == 5 and all(t["is_shipped"] for t in listed["items"])
    api = api_as(admin)
    copy = api.post("/api/v1/pathway-templates", json={"source_id": shipped_id(db_session, "post_avc"), "code": "avc"})
    assert copy.status_code == 201 and not copy.json["is_shipped"]
    steps = [
        {"name": "Bilan", "modality": "in_person", "profession": "masseur_kinesitherapeute"},
        {"name": "Télésoin", "modality": "telesoin", "profession": "masseur_kinesitherapeute", "interval_days": 7},
    ]
    edited = api.client.put(
        f"/api/v1/pathway-templates/{copy.json['id']}/steps", json={"steps": steps}, headers=api.headers
    )
    assert edited.status_code == 200 and len(edited.json["steps"]) == 2
    remote_first = api.client.put(
        f"/api/v1/pathway-templates/{copy.json['id']}/steps", json={"steps": steps[1:]}, headers=api.headers
    )
    assert remote_first.status_code == 422 and "présentiel" in remote_first.json["detail"]
    shipped = api.client.put(
        f"/api/v1/pathway-templates/{shipped_id(db_session)}/steps", json={"steps": steps}, headers=api.headers
    )
    assert shipped.status_code == 422


def test_the_openapi_document_lists_the_pathway_routes(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert "/pathways/{pathway_id}/steps/{step_id}/skip" in paths
    assert "post" in paths["/patients/{patient_id}/eligibility"]
