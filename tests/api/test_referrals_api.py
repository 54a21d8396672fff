import datetime as dt
import io
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from hub.db import utcnow
from hub.models import (
    Appointment,
    AuditEvent,
    CareTeamMember,
    IdentityStatus,
    Patient,
    Profession,
    Referral,
    ReferralState,
    Role,
    Sex,
)
from tests import factories
from tests.api.test_patients_api import assert_problem

PARIS = ZoneInfo("Europe/Paris")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def next_monday_14h() -> dt.datetime:
    today = utcnow().astimezone(PARIS).date()
    monday = today + dt.timedelta(days=7 - today.weekday())
    return dt.datetime.combine(monday, dt.time(14), PARIS)


@pytest.fixture
def hub(db_session, cpts, uploads):
    """A GP and their patient (with the IDEL in the care team), the cardiologist's assisted teleconsultation
    program with next Monday's slot, the coordination, another GP and another CPTS's coordinator."""

    gp = factories.clinician(db_session, cpts, Profession.GENERAL_PRACTITIONER, email="gp@example.org")
    cardiologist = factories.clinician(db_session, cpts, Profession.SPECIALIST, last_name="Lemaitre")
    idel = factories.professional(
        db_session, cpts, Profession.NURSE, commune_insee="24571", accompanies_teleconsultation=True
    )
    patient = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id, commune_insee="24571")
    factories.in_care_team(db_session, patient, idel)
    program = factories.program(db_session, cpts, performer=cardiologist.professional)
    slot = factories.slot(db_session, program, next_monday_14h())
    coordinator = factories.coordinator(db_session, cpts)
    db_session.commit()
    return {
        "gp": gp,
        "other_gp": factories.clinician(db_session, cpts, Profession.GENERAL_PRACTITIONER),
        "cardiologist": cardiologist,
        "coordinator": coordinator,
        "stranger": factories.user(db_session, factories.cpts(db_session), Role.COORDINATOR),
        "patient": patient,
        "program": program,
        "slot": slot,
        "idel": idel,
    }


# The coordinator's HAS checklist for a 76-year-old with illectronism: steered to an assisted teleconsultation.
ASSISTED_CHECKLIST = {
    "modality": "assisted_teleconsultation",
    "profession": "medecin_specialiste",
    "clinical_situation_compatible": True,
    "can_communicate_remotely": True,
    "can_use_tools": False,
    "physical_factors_ok": True,
    "psychological_factors_ok": True,
    "social_factors_ok": True,
    "needs_direct_contact": False,
    "needs_equipment_not_at_hand": False,
    "is_first_care": False,
    "several_conditions": True,
    "illectronism": True,
}


def create(api, hub, **data):
    body = {"patient_id": hub["patient"].id, "target_program_id": hub["program"].id, "reason": "Dyspnée d'effort"}
    return api.post("/api/v1/referrals", json=body | data)


def upload(api, referral_id, content, name="bilan.pdf", kind="biology_prescription", mimetype="application/pdf"):
    return api.client.post(
        f"/api/v1/referrals/{referral_id}/attachments",
        headers=api.headers,
        data={"kind": kind, "file": (io.BytesIO(content), name, mimetype)},
        content_type="multipart/form-data",
    )


def test_walk_through_gp_submits_coordinator_schedules_gp_sees_the_date(api_as, hub, uploads):
    gp, coordinator = api_as(hub["gp"]), api_as(hub["coordinator"])
    response = create(gp, hub, urgency="soon", needs=["illectronisme", "aidant"], current_treatment="Furosémide")
    assert response.status_code == 201, response.json
    referral_id = response.json["id"]
    assert response.json["state"] == "draft" and response.json["needs"] == ["aidant", "illectronisme"]
    attached = upload(gp, referral_id, PDF)
    assert attached.status_code == 201, attached.json
    assert attached.json["kind_label"] == "Ordonnance de bilan biologique"
    today = utcnow().astimezone(PARIS).date().isoformat()
    submitted = gp.post(f"/api/v1/referrals/{referral_id}/submit", json={"consent_collected_on": today})
    assert submitted.status_code == 200, submitted.json
    assert submitted.json["state_label"] == "Envoyé"

    assert [r["id"] for r in coordinator.get("/api/v1/referrals").json["items"]] == [referral_id]
    assert coordinator.post(f"/api/v1/referrals/{referral_id}/accept").json["state"] == "accepted"
    assessed = coordinator.post(f"/api/v1/patients/{hub['patient'].id}/eligibility", json=ASSISTED_CHECKLIST)
    assert assessed.status_code == 201 and assessed.json["outcome"] == "assisted", assessed.json
    scheduled = coordinator.post(f"/api/v1/referrals/{referral_id}/schedule", json={"slot_id": hub["slot"].id})
    assert scheduled.status_code == 200, scheduled.json

    seen = gp.get(f"/api/v1/referrals/{referral_id}").json
    assert seen["state"] == "scheduled" and seen["state_label"] == "Programmé"
    monday = next_monday_14h()
    assert seen["scheduled_label"].startswith("programmé le lundi ")
    assert seen["scheduled_label"].endswith(f"{monday.year}, 14 h 00")
    assert seen["attachments"][0]["content_type"] == "application/pdf"
    assert any(uploads.rglob(seen["attachments"][0]["sha256"]))


def test_bad_input_gets_a_french_error_and_saves_nothing(api_as, hub, db_session):
    gp = api_as(hub["gp"])
    unknown = create(gp, hub, target_program_id=999999)
    assert unknown.status_code == 422
    assert unknown.json["errors"]["target_program_id"] == "Programme inconnu dans la CPTS."
    assert db_session.scalar(select(func.count()).select_from(Referral)) == 0
    referral_id = create(gp, hub, reason="").json["id"]
    bad_date = gp.post(f"/api/v1/referrals/{referral_id}/submit", json={"consent_collected_on": "31/02/2026"})
    assert bad_date.status_code == 422
    assert bad_date.json["errors"]["consent_collected_on"].startswith("Date invalide")
    no_reason = gp.post(f"/api/v1/referrals/{referral_id}/submit", json={"consent_collected_on": "2026-11-02"})
    assert no_reason.json["errors"]["reason"] == "Indiquez le motif de l'adressage."
    db_session.expire_all()
    assert db_session.get(Referral, referral_id).state is ReferralState.DRAFT
    assert db_session.get(Referral, referral_id).consent_id is None


def test_a_draft_is_updated_until_it_is_sent(api_as, hub):
    gp = api_as(hub["gp"])
    referral_id = create(gp, hub).json["id"]
    changed = gp.patch(f"/api/v1/referrals/{referral_id}", json={"history": "HTA", "urgency": "urgent"})
    assert changed.status_code == 200 and changed.json["history"] == "HTA" and changed.json["urgency_label"] == "Urgent"
    assert gp.patch(f"/api/v1/referrals/{referral_id}", json={"patient_id": 1}).status_code == 422
    gp.post(f"/api/v1/referrals/{referral_id}/submit", json={"consent_collected_on": "2026-11-02"})
    refused = gp.patch(f"/api/v1/referrals/{referral_id}", json={"history": "Diabète"})
    assert refused.status_code == 409 and refused.json["detail"] == "Action impossible : l'adressage est « Envoyé »."


def test_reject_needs_a_reason(api_as, hub):
    gp, coordinator = api_as(hub["gp"]), api_as(hub["coordinator"])
    referral_id = create(gp, hub).json["id"]
    gp.post(f"/api/v1/referrals/{referral_id}/submit", json={"consent_collected_on": "2026-11-02"})
    refused = coordinator.post(f"/api/v1/referrals/{referral_id}/reject", json={})
    assert refused.status_code == 422 and refused.json["errors"]["reason"] == "Ce champ est obligatoire."
    rejected = coordinator.post(f"/api/v1/referrals/{referral_id}/reject", json={"reason": "Hors périmètre"})
    assert rejected.json["state_label"] == "Refusé"
    assert gp.get(f"/api/v1/referrals/{referral_id}").json["rejection_reason"] == "Hors périmètre"


def test_uploads_are_checked_by_content_and_served_only_to_those_allowed(
    api_as, hub, app, db_session, uploads, monkeypatch
):
    gp = api_as(hub["gp"])
    referral_id = create(gp, hub).json["id"]
    fake = upload(gp, referral_id, b"Bonjour, je suis un texte", name="ordonnance.pdf")
    assert fake.status_code == 422
    assert fake.json["errors"]["file"] == "Format non accepté : seuls les PDF, PNG et JPEG sont acceptés."
    limit = 1024  # a small limit: a body of megabytes would be spooled to a file the test client leaves open
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "UPLOAD_MAX_BYTES": limit}))
    big = upload(gp, referral_id, PDF + b"0" * limit)
    assert big.status_code == 422 and "taille maximale" in big.json["errors"]["file"]
    no_kind = upload(gp, referral_id, PDF, kind="selfie")
    assert no_kind.status_code == 422 and "kind" in no_kind.json["errors"]

    stored = upload(gp, referral_id, PDF, name="../../bilan sanguin.pdf").json
    assert stored["filename"] == "bilan_sanguin.pdf"
    path = next(uploads.rglob(stored["sha256"]))
    assert path.read_bytes() == PDF and "static" not in path.parts
    url = f"/api/v1/referrals/{referral_id}/attachments/{stored['id']}"
    served = gp.get(url)
    assert served.status_code == 200 and served.data == PDF
    assert served.headers["Content-Type"] == "application/pdf"
    assert served.headers["Content-Disposition"] == 'attachment; filename="bilan_sanguin.pdf"'
    assert served.headers["X-Content-Type-Options"] == "nosniff"

    for intruder in ("other_gp", "stranger"):
        assert api_as(hub[intruder]).get(url).status_code == 404
        denial = db_session.scalar(
            select(AuditEvent)
            .where(AuditEvent.actor_user_id == hub[intruder].id)
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
        assert (denial.action, denial.outcome, denial.target_id) == ("referral.read", "denied", str(referral_id))


def test_a_gp_sees_their_own_referrals_a_specialist_those_addressed_to_them(api_as, hub):
    gp = api_as(hub["gp"])
    to_program = create(gp, hub).json["id"]
    to_cardiologist = create(
        gp, hub, target_program_id=None, target_specialist_id=hub["cardiologist"].professional_id
    ).json["id"]
    other = api_as(hub["other_gp"])
    assert other.get("/api/v1/referrals").json["items"] == []
    assert other.get(f"/api/v1/referrals/{to_program}").status_code == 404
    assert {r["id"] for r in gp.get("/api/v1/referrals").json["items"]} == {to_program, to_cardiologist}
    cardiologist = api_as(hub["cardiologist"])
    assert [r["id"] for r in cardiologist.get("/api/v1/referrals").json["items"]] == [to_cardiologist]
    assert cardiologist.get(f"/api/v1/referrals/{to_cardiologist}").status_code == 200
    assert cardiologist.get(f"/api/v1/referrals/{to_program}").status_code == 404
    stranger = api_as(hub["stranger"])
    assert stranger.get(f"/api/v1/referrals/{to_program}").status_code == 404
    assert stranger.get("/api/v1/referrals").json["total"] == 0
    assert stranger.post(f"/api/v1/referrals/{to_program}/accept").status_code == 404


def test_a_gp_cannot_triage_and_a_non_gp_cannot_refer(api_as, hub):
    gp = api_as(hub["gp"])
    referral_id = create(gp, hub).json["id"]
    assert gp.post(f"/api/v1/referrals/{referral_id}/accept").status_code == 403
    refused = create(api_as(hub["cardiologist"]), hub)
    assert refused.status_code == 422 and "médecin généraliste" in refused.json["detail"]


def test_the_openapi_document_lists_the_referral_routes(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert "multipart/form-data" in paths["/referrals/{referral_id}/attachments"]["post"]["requestBody"]["content"]
    assert "/referrals/{referral_id}/schedule" in paths


# --- a referral for a patient the GP creates ------------------------------------------------------------------

NEW_PATIENT = {
    "birth_name": "Vidal",
    "first_birth_given_name": "Jeanne",
    "birth_date": "1941-06-12",
    "sex": "F",
    "birth_place_insee": "24037",
}


def counts(session) -> tuple[int, int]:
    return (
        session.scalar(select(func.count()).select_from(Patient)),
        session.scalar(select(func.count()).select_from(Referral)),
    )


def test_the_gp_creates_the_patient_with_the_referral_and_joins_their_care_team(api_as, hub, db_session):
    nir = factories.valid_nir(sex=Sex.FEMALE, birth_date=dt.date(1941, 6, 12), birth_place="24037")
    body = {"patient": NEW_PATIENT | {"ins_matricule": nir}, "target_program_id": hub["program"].id, "reason": "Bilan"}
    response = api_as(hub["gp"]).post("/api/v1/referrals", json=body)
    assert response.status_code == 201, response.json
    patient = db_session.get(Patient, response.json["patient_id"])
    assert (patient.birth_name, patient.first_birth_given_name) == ("VIDAL", "JEANNE")
    assert patient.identity_status is IdentityStatus.PROVISIONAL and patient.ins_matricule == nir
    assert db_session.get(CareTeamMember, (patient.id, hub["gp"].professional_id)) is not None
    assert api_as(hub["gp"]).get(f"/api/v1/patients/{patient.id}").status_code == 200


def test_a_possible_duplicate_is_a_409_listing_the_candidates_until_confirmed(api_as, hub, db_session):
    existing = hub["patient"]
    traits = NEW_PATIENT | {"birth_name": existing.birth_name, "birth_date": existing.birth_date.isoformat()}
    body = {"patient": traits, "target_program_id": hub["program"].id, "reason": "Bilan"}
    before = counts(db_session)
    problem = assert_problem(api_as(hub["gp"]).post("/api/v1/referrals", json=body), 409)
    assert problem["candidate_ids"] == [existing.id] and "même personne" in problem["detail"]
    assert counts(db_session) == before
    confirmed = api_as(hub["gp"]).post("/api/v1/referrals", json=body | {"confirm_new_patient": True})
    assert confirmed.status_code == 201, confirmed.json
    assert confirmed.json["patient_id"] not in (existing.id, None)
    assert counts(db_session) == (before[0] + 1, before[1] + 1)


def test_another_gps_patient_as_a_possible_duplicate_is_only_said_to_exist(api_as, hub, db_session):
    """I5: the referral's patient creation answers like the patient API: no candidate outside one's care."""
    existing = hub["patient"]
    traits = NEW_PATIENT | {"birth_name": existing.birth_name, "birth_date": existing.birth_date.isoformat()}
    body = {"patient": traits, "target_program_id": hub["program"].id, "reason": "Bilan", "confirm_new_patient": True}
    before = counts(db_session)
    problem = assert_problem(api_as(hub["other_gp"]).post("/api/v1/referrals", json=body), 409)
    assert problem["candidate_ids"] == [] and "coordination" in problem["detail"]
    assert counts(db_session) == before


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"patient": NEW_PATIENT | {"birth_place_insee": "2403"}}, "patient.birth_place_insee", "code INSEE"),
        ({"patient": NEW_PATIENT | {"birth_date": "2041-06-12"}}, "birth_date", "futur"),
        ({"patient": NEW_PATIENT | {"birth_date": "1941-02-30"}}, "patient.birth_date", "Date invalide"),
        ({"patient": NEW_PATIENT | {"ins_matricule": "241062403700199"}}, "patient.ins_matricule", "clé"),
        ({"patient": {k: v for k, v in NEW_PATIENT.items() if k != "sex"}}, "patient.sex", "obligatoire"),
        ({"patient": NEW_PATIENT | {"cpts_id": 1}}, "patient.cpts_id", "Champ inconnu"),
        ({"patient": "Jeanne Vidal"}, "patient._schema", "Objet JSON attendu"),
        ({}, "patient_id", "l'un des deux"),
        ({"patient": NEW_PATIENT, "patient_id": 1}, "patient_id", "l'un des deux"),
    ],
)
def test_bad_patient_traits_are_a_422_and_nothing_is_saved(api_as, hub, db_session, body, field, message):
    before = counts(db_session)
    sent = {"target_program_id": hub["program"].id, "reason": "Bilan"} | body
    problem = assert_problem(api_as(hub["gp"]).post("/api/v1/referrals", json=sent), 422)
    assert message in problem["errors"][field], problem
    assert counts(db_session) == before


def test_a_coordinator_creates_no_patient_through_a_referral(api_as, hub, db_session):
    before = counts(db_session)
    body = {"patient": NEW_PATIENT, "target_program_id": hub["program"].id, "reason": "Bilan"}
    assert_problem(api_as(hub["coordinator"]).post("/api/v1/referrals", json=body), 403)
    assert counts(db_session) == before


def test_scheduling_without_an_eligibility_checklist_is_a_422_and_books_nothing(api_as, hub, db_session):
    gp, coordinator = api_as(hub["gp"]), api_as(hub["coordinator"])
    referral_id = create(gp, hub).json["id"]
    today = utcnow().astimezone(PARIS).date().isoformat()
    gp.post(f"/api/v1/referrals/{referral_id}/submit", json={"consent_collected_on": today})
    coordinator.post(f"/api/v1/referrals/{referral_id}/accept")
    refused = coordinator.post(f"/api/v1/referrals/{referral_id}/schedule", json={"slot_id": hub["slot"].id})
    problem = assert_problem(refused, 422)
    assert problem["detail"].startswith("Vérifiez d'abord l'éligibilité du patient au soin à distance")
    assert (problem["patient_id"], problem["modality"]) == (hub["patient"].id, "assisted_teleconsultation")
    referral = db_session.get(Referral, referral_id)
    db_session.refresh(referral)
    assert referral.state is ReferralState.ACCEPTED and referral.appointment_id is None
    assert referral.letter_sha256 is None
    assert db_session.scalar(select(func.count()).where(Appointment.patient_id == hub["patient"].id)) == 0


def test_an_id_beyond_the_database_integer_is_refused_with_the_request(api_as, hub):
    # It used to reach the lookup and overflow it: a 500.
    refused = create(api_as(hub["gp"]), hub, patient_id=10**30)
    assert refused.status_code == 422
    assert refused.json["errors"]["patient_id"].startswith("Nombre hors des limites acceptées")
