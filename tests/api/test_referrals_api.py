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
            .order_by(AuditEvent.id.desc())
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


# --- the referral's detail, the IDELs suggested at a slot (issue 12, item 2) -------------------------------

VERGT, CHALAGNAC, COURSAC, VILLAMBLARD = "24571", "24094", "24139", "24581"


def accepted_referral(db_session, hub, **overrides) -> Referral:
    referral = factories.referral(
        db_session,
        hub["patient"],
        author=hub["gp"],
        state=ReferralState.ACCEPTED,
        **({"target_program_id": hub["program"].id} | overrides),
    )
    factories.eligible_for_remote_care(db_session, hub["patient"], assessed_by=hub["coordinator"])
    db_session.commit()
    return referral


def nurse(db_session, cpts_row, commune: str, **fields):
    fields = {"commune_insee": commune, "accompanies_teleconsultation": True} | fields
    return factories.professional(db_session, cpts_row, Profession.NURSE, **fields)


def test_the_detail_gives_needs_consent_documents_and_history_in_words(api_as, hub, db_session):
    gp, coordinator = api_as(hub["gp"]), api_as(hub["coordinator"])
    referral_id = create(
        gp, hub, needs=["mobilite_reduite", "illectronisme"], urgency="urgent", history="Hypertension artérielle"
    ).json["id"]
    upload(gp, referral_id, PDF)
    today = utcnow().astimezone(PARIS).date()
    assert gp.post(f"/api/v1/referrals/{referral_id}/submit", json={"consent_collected_on": today.isoformat()})
    coordinator.post(f"/api/v1/referrals/{referral_id}/accept")
    seen = coordinator.get(f"/api/v1/referrals/{referral_id}").json
    assert seen["needs_labels"] == ["Illectronisme", "Mobilité réduite"] and seen["urgency_label"] == "Urgent"
    consent = seen["consent"]
    assert (consent["kind_label"], consent["collected_on"]) == ("Télésoin / téléconsultation", today.isoformat())
    assert "12 h" not in consent["collected_on_label"] and consent["is_valid"]
    assert seen["attachments"][0]["size_label"] == "45\u00a0octets"
    assert seen["target_program_name"] == "Téléconsultation cardiologie CH Périgueux"
    history = [(entry["label"], entry["by"]) for entry in seen["events"]]
    assert [label for label, _by in history] == [
        "Brouillon créé",
        "Document joint",
        "Envoyé à la coordination",
        "Accepté par la coordination",
    ]
    assert history[-1][1] == hub["coordinator"].display_name
    assert gp.get(f"/api/v1/referrals/{referral_id}").json["events"] == seen["events"]
    assert seen["history"] == "Hypertension artérielle", "the letter's medical history, beside the states"


def test_a_referral_of_another_gp_or_cpts_is_a_404(api_as, hub, db_session):
    referral_id = create(api_as(hub["gp"]), hub).json["id"]
    for who in ("other_gp", "stranger"):
        assert_problem(api_as(hub[who]).get(f"/api/v1/referrals/{referral_id}"), 404)
    url = f"/api/v1/referrals/{referral_id}/candidates?slot={hub['slot'].id}"
    assert_problem(api_as(hub["stranger"]).get(url), 404)
    assert_problem(api_as(hub["gp"]).get(url), 403)


def test_the_patients_own_idel_first_then_the_free_idels_by_distance(api_as, hub, cpts, db_session):
    villamblard = nurse(db_session, cpts, VILLAMBLARD)
    coursac = nurse(db_session, cpts, COURSAC)
    chalagnac = nurse(db_session, cpts, CHALAGNAC)
    nurse(db_session, cpts, VERGT, is_active=False)
    nurse(db_session, cpts, VERGT, accompanies_teleconsultation=False)
    factories.officine(db_session, cpts, commune_insee=VERGT)  # a pharmacist next door: not for this session
    referral = accepted_referral(db_session, hub)
    coordinator = api_as(hub["coordinator"])
    found = coordinator.get(f"/api/v1/referrals/{referral.id}/candidates?slot={hub['slot'].id}")
    assert found.status_code == 200, found.json
    assert (found.json["place_kind"], found.json["own_idel_note"]) == ("lieu_dedie", None)
    items = found.json["items"]
    assert [i["professional_id"] for i in items] == [hub["idel"].id, chalagnac.id, coursac.id, villamblard.id]
    own, nearest = items[0], items[1]
    assert own["is_own"] and own["reason"].startswith("IDEL du patient") and own["commune"] == "Vergt"
    assert own["distance_km"] == 0.0 and own["distance_label"] == "0,0\u00a0km"
    assert nearest["commune"] == "Chalagnac" and 5 < nearest["distance_km"] < 7
    assert nearest["reason"] == "5,8\u00a0km · 0 visite ce mois · 0 proposition en attente"
    assert (nearest["visits_this_month"], nearest["pending_offers"]) == (0, 0)
    assert [i["commune"] for i in items[2:]] == ["Coursac", "Villamblard"]
    assert all(i["profession"] == "infirmier" for i in items) and "24" not in str([i["commune"] for i in items])


def test_a_busy_idel_is_left_out_and_the_own_idel_busy_is_said(api_as, hub, cpts, db_session):
    chalagnac = nurse(db_session, cpts, CHALAGNAC)
    other_patient = factories.patient(db_session, cpts, commune_insee=VERGT)
    factories.eligible_for_remote_care(db_session, other_patient, assessed_by=hub["coordinator"])
    other_program = factories.program(db_session, cpts)
    other_slot = factories.slot(db_session, other_program, next_monday_14h())
    from workflows import appointments

    appointments.book(
        db_session,
        hub["coordinator"],
        slot=other_slot,
        patient=other_patient,
        place_kind="lieu_dedie",
        accompanying=hub["idel"],
    )
    referral = accepted_referral(db_session, hub)
    found = api_as(hub["coordinator"]).get(f"/api/v1/referrals/{referral.id}/candidates?slot={hub['slot'].id}")
    assert [i["professional_id"] for i in found.json["items"]] == [chalagnac.id]
    assert found.json["own_idel_note"] == f"{hub['idel'].full_name}, IDEL du patient, n'est pas libre à ce créneau."


def test_reduced_mobility_means_a_home_visit_by_an_idel_serving_the_commune(api_as, hub, cpts, db_session):
    serving = nurse(db_session, cpts, COURSAC, served_communes=f"{COURSAC} {VERGT}")
    nurse(db_session, cpts, CHALAGNAC)  # nearer, but no home visits in Vergt
    referral = accepted_referral(db_session, hub, needs='["mobilite_reduite"]')
    coordinator = api_as(hub["coordinator"])
    found = coordinator.get(f"/api/v1/referrals/{referral.id}/candidates?slot={hub['slot'].id}").json
    assert (found["place_kind"], found["place_label"]) == ("domicile", "Domicile (organisé spécifiquement)")
    assert [i["professional_id"] for i in found["items"]] == [hub["idel"].id, serving.id]
    assert found["items"][1]["reason"].endswith("intervient à domicile dans la commune du patient")
    scheduled = coordinator.post(
        f"/api/v1/referrals/{referral.id}/schedule", json={"slot_id": hub["slot"].id, "accompanying_id": serving.id}
    )
    assert scheduled.status_code == 200, scheduled.json
    appointment = db_session.get(Appointment, scheduled.json["appointment_id"])
    assert (appointment.place_kind.value, appointment.accompanying_id) == ("domicile", serving.id)


def test_pharmacists_only_for_an_officine_session(api_as, hub, cpts, db_session):
    organisation, pharmacist = factories.officine(db_session, cpts, commune_insee=VERGT)
    factories.officine(db_session, cpts, commune_insee=VERGT)  # another officine's pharmacist
    nurse(db_session, cpts, VERGT)
    at_officine = factories.program(
        db_session, cpts, performer=hub["cardiologist"].professional, at_officine=organisation
    )
    slot = factories.slot(db_session, at_officine, next_monday_14h() + dt.timedelta(days=1))
    referral = accepted_referral(db_session, hub, target_program_id=at_officine.id, needs='["mobilite_reduite"]')
    coordinator = api_as(hub["coordinator"])
    found = coordinator.get(f"/api/v1/referrals/{referral.id}/candidates?slot={slot.id}").json
    assert found["place_kind"] == "officine", "the officine's session stays at the officine"
    assert [i["professional_id"] for i in found["items"]] == [pharmacist.professional_id]
    assert found["items"][0]["profession"] == "pharmacien"
    # And no pharmacist for a session that is not an officine's.
    other = accepted_referral(db_session, hub)
    ids = [
        i["professional_id"]
        for i in coordinator.get(f"/api/v1/referrals/{other.id}/candidates?slot={hub['slot'].id}").json["items"]
    ]
    assert pharmacist.professional_id not in ids and ids
    refused = coordinator.post(
        f"/api/v1/referrals/{other.id}/schedule",
        json={"slot_id": hub["slot"].id, "accompanying_id": pharmacist.professional_id},
    )
    assert_problem(refused, 422)
    assert "pharmacien" in refused.json["errors"]["accompanying_id"]
    db_session.expire_all()
    assert db_session.get(Referral, other.id).state is ReferralState.ACCEPTED


def test_candidates_need_a_slot_of_the_referrals_target(api_as, hub, cpts, db_session):
    referral = accepted_referral(db_session, hub)
    coordinator = api_as(hub["coordinator"])
    missing = coordinator.get(f"/api/v1/referrals/{referral.id}/candidates")
    assert_problem(missing, 422)
    assert missing.json["errors"]["slot"] == "Indiquez le créneau (slot)."
    elsewhere = factories.slot(db_session, factories.program(db_session, cpts), next_monday_14h())
    db_session.commit()
    wrong = coordinator.get(f"/api/v1/referrals/{referral.id}/candidates?slot={elsewhere.id}")
    assert_problem(wrong, 422)
    assert "programme visé" in wrong.json["errors"]["slot"]


def test_a_consent_is_recorded_by_its_day(api_as, hub, db_session):
    coordinator = api_as(hub["coordinator"])
    url = f"/api/v1/patients/{hub['patient'].id}/consents"
    recorded = coordinator.post(url, json={"kind": "telehealth", "method": "oral", "collected_on": "2026-11-02"})
    assert recorded.status_code == 201, recorded.json
    assert (recorded.json["collected_on"], recorded.json["collected_at"]) == ("2026-11-02", None)
    nothing = coordinator.post(url, json={"kind": "telehealth", "method": "oral"})
    assert_problem(nothing, 422)
    assert "date du recueil" in nothing.json["errors"]["collected_on"]
