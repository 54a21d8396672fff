"""The FHIR read API (/fhir/) on the demo territory: every resource the hub serves parsed by an independent
validator (fhir.resources, R4B structure: see tests/fhir_validation.py) and checked against the FR Core / ANS
constraints that matter, one test per resource type; the searches the guides name, paging, errors, access."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import event, func, select

from hub.db import utcnow
from hub.demo import load_demo, load_demo_schedule
from hub.demo.planning import GROUP_REHABILITATION
from hub.demo.territory import find_demo_cpts
from hub.models import (
    Appointment,
    AppointmentState,
    AuditEvent,
    IdentityStatus,
    Organisation,
    Patient,
    Professional,
    ProgramKind,
    SessionProgram,
    Slot,
    TeleexpertiseState,
    User,
)
from hub.services import fhir
from scheduling.slots import HOLDING_STATES
from tests import ZONE, factories
from tests.fhir_validation import validate

DEMO_DAY = dt.datetime(2026, 11, 26, 10, 0, tzinfo=ZoneInfo(ZONE))


@pytest.fixture
def demo(app, db_session):
    with time_machine.travel(DEMO_DAY, tick=False) as traveller:
        zone = app.config["HUB"]["TIMEZONE"]
        summary = load_demo(db_session, zone=zone)
        load_demo_schedule(db_session, summary.cpts_id, now=utcnow(), zone=zone)
        db_session.commit()
        yield find_demo_cpts(db_session), traveller


@pytest.fixture
def coordination(db_session, demo, api_as):
    return api_as(db_session.scalar(select(User).where(User.login == "coordination")))


def fhir_json(response, status=200, kind=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == fhir.MEDIA_TYPE
    body = response.get_json()
    if kind is not None:
        assert body["resourceType"] == kind
    return body


def entries(bundle):
    validate(bundle)
    assert bundle["type"] == "searchset"
    return [entry["resource"] for entry in bundle["entry"]]


def test_capability_statement_lists_each_resource_its_reads_and_searches(client):
    body = fhir_json(client.get("/fhir/metadata"), kind="CapabilityStatement")
    validate(body)
    assert body["fhirVersion"] == "4.0.1" and fhir.MEDIA_TYPE in body["format"]
    assert body["implementation"]["url"] == "http://localhost/fhir"
    served = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert set(served) == {
        "Practitioner",
        "Organization",
        "Patient",
        "Schedule",
        "Slot",
        "Appointment",
        "ServiceRequest",
    }
    assert {p["name"] for p in served["Slot"]["searchParam"]} >= {"schedule", "start", "status"}
    assert {p["name"] for p in served["Appointment"]["searchParam"]} >= {"patient", "actor", "date"}
    assert all({i["code"] for i in r["interaction"]} == {"read", "search-type"} for r in served.values())


def test_practitioner_carries_rpps_and_idnps_and_is_found_by_either(db_session, demo, coordination):
    professional = db_session.scalar(select(Professional).where(Professional.rpps.is_not(None)).limit(1))
    body = fhir_json(coordination.get(f"/fhir/Practitioner/{professional.id}"), kind="Practitioner")
    validate(body)
    systems = {i["system"]: i["value"] for i in body["identifier"]}
    assert systems == {fhir.RPPS_SYSTEM: professional.rpps, fhir.IDNPS_SYSTEM: f"8{professional.rpps}"}
    assert body["qualification"][0]["code"]["coding"][0]["system"] == fhir.PROFESSION_SYSTEM
    for query in (f"{fhir.RPPS_SYSTEM}|{professional.rpps}", f"{fhir.IDNPS_SYSTEM}|8{professional.rpps}"):
        found = entries(fhir_json(coordination.get("/fhir/Practitioner", query_string={"identifier": query})))
        assert [r["id"] for r in found] == [str(professional.id)]
    refused = coordination.get("/fhir/Practitioner", query_string={"identifier": "urn:autre|123"})
    outcome = fhir_json(refused, 400, kind="OperationOutcome")
    validate(outcome)


def test_organization_carries_finess(db_session, demo, coordination):
    cpts, _clock = demo
    organisation = db_session.scalar(
        select(Organisation).where(Organisation.cpts_id == cpts.id, Organisation.finess.is_not(None)).limit(1)
    )
    body = fhir_json(coordination.get(f"/fhir/Organization/{organisation.id}"), kind="Organization")
    validate(body)
    assert body["identifier"][0] | {"type": None} == {
        "use": "official",
        "system": fhir.FINESS_SYSTEM,
        "value": organisation.finess,
        "type": None,
    }
    assert body["partOf"] == {"reference": f"Organization/{cpts.id}"}
    found = entries(fhir_json(coordination.get("/fhir/Organization", query_string={"identifier": organisation.finess})))
    assert [r["id"] for r in found] == [str(organisation.id)]


def test_patient_has_its_ins_only_when_qualified_and_its_identity_status_always(db_session, demo, coordination):
    cpts, _clock = demo
    qualified, other = (
        db_session.scalar(
            select(Patient).where(Patient.cpts_id == cpts.id, Patient.ins_matricule.is_not(None), condition).limit(1)
        )
        for condition in (
            Patient.identity_status == IdentityStatus.QUALIFIED,
            Patient.identity_status != IdentityStatus.QUALIFIED,
        )
    )
    body = fhir_json(coordination.get(f"/fhir/Patient/{qualified.id}"), kind="Patient")
    validate(body)
    [ins] = body["identifier"]
    assert ins["system"] in (fhir.INS_NIR_SYSTEM, fhir.INS_NIA_SYSTEM) and ins["value"] == qualified.ins_matricule
    assert ins["type"]["coding"][0]["code"] in ("INS-NIR", "INS-NIA")
    status = body["extension"][0]
    assert status["url"] == fhir.IDENTITY_RELIABILITY_URL
    assert status["extension"][0]["valueCoding"] == {"system": fhir.IDENTITY_RELIABILITY_SYSTEM, "code": "QUAL"}
    unqualified = fhir_json(coordination.get(f"/fhir/Patient/{other.id}"))
    validate(unqualified)
    assert "identifier" not in unqualified
    assert unqualified["extension"][0]["extension"][0]["valueCoding"]["code"] == other.identity_status.value
    # Found by the INS only when it is qualified: an unqualified identity does not carry it.
    by_ins = fhir_json(
        coordination.get("/fhir/Patient", query_string={"identifier": f"{ins['system']}|{ins['value']}"})
    )
    assert [r["id"] for r in entries(by_ins)] == [str(qualified.id)]
    hidden = fhir_json(coordination.get("/fhir/Patient", query_string={"identifier": other.ins_matricule}))
    assert hidden["total"] == 0


def test_schedule_is_a_program_with_its_performer(db_session, demo, coordination):
    cpts, _clock = demo
    program = db_session.scalar(select(SessionProgram).where(SessionProgram.cpts_id == cpts.id).limit(1))
    body = fhir_json(coordination.get(f"/fhir/Schedule/{program.id}"), kind="Schedule")
    validate(body)
    assert body["actor"][0]["reference"] == f"Practitioner/{program.performer_id}"
    found = entries(
        fhir_json(coordination.get("/fhir/Schedule", query_string={"actor": f"Practitioner/{program.performer_id}"}))
    )
    assert str(program.id) in {r["id"] for r in found}
    assert all(r["actor"][0]["reference"] == f"Practitioner/{program.performer_id}" for r in found)


def test_slot_search_by_schedule_window_and_status_pages_with_links(db_session, demo, coordination):
    cpts, _clock = demo
    program = db_session.scalar(
        select(SessionProgram)
        .where(SessionProgram.cpts_id == cpts.id, SessionProgram.kind == ProgramKind.ASSISTED_TELECONSULTATION)
        .limit(1)
    )
    window = {"schedule": f"Schedule/{program.id}", "start": ["ge2026-11-26", "lt2027-01-01"]}
    everything = fhir_json(coordination.get("/fhir/Slot", query_string=window | {"_count": 200}))
    resources = entries(everything)
    assert {r["status"] for r in resources} == {"free", "busy"}
    busy_ids = {r["id"] for r in resources if r["status"] == "busy"}
    held = db_session.scalars(
        select(Appointment.slot_id).where(
            Appointment.program_id == program.id,
            Appointment.state.not_in((AppointmentState.CANCELLED,)),
            Appointment.starts_at >= DEMO_DAY.replace(hour=0),
        )
    ).all()
    assert busy_ids == {str(slot_id) for slot_id in held if slot_id is not None}
    free_total = everything["total"] - len(busy_ids)
    first = fhir_json(coordination.get("/fhir/Slot", query_string=window | {"status": "free", "_count": 3}))
    assert first["total"] == free_total and len(first["entry"]) == 3
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links and "_page=2" in links["next"]
    second = fhir_json(coordination.get(links["next"].removeprefix("http://localhost")))
    assert {link["relation"] for link in second["link"]} >= {"self", "previous"}
    ids = [r["id"] for r in entries(first) + entries(second)]
    assert len(set(ids)) == 6 and all(r["status"] == "free" for r in entries(second))
    starts = [r["start"] for r in entries(first) + entries(second)]
    assert starts == sorted(starts) and starts[0] >= "2026-11-26"
    one = fhir_json(coordination.get(f"/fhir/Slot/{ids[0]}"), kind="Slot")
    validate(one)
    assert one["schedule"] == {"reference": f"Schedule/{program.id}"}
    bad = coordination.get("/fhir/Slot", query_string={"start": "ge-demain"})
    validate(fhir_json(bad, 400, kind="OperationOutcome"))
    unknown = coordination.get("/fhir/Slot", query_string={"colour": "blue"})
    fhir_json(unknown, 400, kind="OperationOutcome")


def test_a_group_session_with_seats_left_is_a_free_slot(db_session, demo, coordination):
    """Issue 16's group sessions read through issue 15's Slot: a session of six with four participants still takes
    patients (free); full, it is busy — the rule of scheduling.slots.has_seat_left, not « someone holds it »."""
    cpts, _clock = demo
    program = db_session.scalar(
        select(SessionProgram).where(SessionProgram.cpts_id == cpts.id, SessionProgram.name == GROUP_REHABILITATION)
    )
    taken = (
        select(Appointment.slot_id, func.count())
        .where(Appointment.program_id == program.id, Appointment.state.in_(HOLDING_STATES))
        .group_by(Appointment.slot_id)
    )
    [(slot_id, participants)] = db_session.execute(taken).all()
    assert 0 < participants < program.capacity
    read = fhir_json(coordination.get(f"/fhir/Slot/{slot_id}"), kind="Slot")
    assert read["status"] == "free"
    program.capacity = participants
    db_session.commit()
    assert fhir_json(coordination.get(f"/fhir/Slot/{slot_id}"), kind="Slot")["status"] == "busy"


def test_appointment_participants_say_whether_the_idel_confirmed(db_session, demo, coordination):
    cpts, _clock = demo
    rows = db_session.scalars(
        select(Appointment).where(Appointment.cpts_id == cpts.id, Appointment.accompanying_id.is_not(None))
    ).all()
    by_state = {row.state: row for row in rows}
    assert AppointmentState.CONFIRMED in by_state or AppointmentState.DONE in by_state
    for state, row in by_state.items():
        body = fhir_json(coordination.get(f"/fhir/Appointment/{row.id}"), kind="Appointment")
        validate(body)
        assert body["status"] == fhir.APPOINTMENT_STATUSES[state]
        idel = next(p for p in body["participant"] if p["actor"]["reference"] == f"Practitioner/{row.accompanying_id}")
        expected = "accepted" if state in fhir.IDEL_ACCEPTED else "needs-action"
        assert idel["status"] == (expected if state is not AppointmentState.DECLINED else "declined")
    patient_id = rows[0].patient_id
    mine = fhir_json(
        coordination.get("/fhir/Appointment", query_string={"patient": f"Patient/{patient_id}", "date": "ge2026-01-01"})
    )
    assert {r["id"] for r in entries(mine)} == {str(row.id) for row in rows if row.patient_id == patient_id} | {
        str(a.id) for a in db_session.scalars(select(Appointment).where(Appointment.patient_id == patient_id))
    }
    idel_id = rows[0].accompanying_id
    theirs = entries(
        fhir_json(coordination.get("/fhir/Appointment", query_string={"actor": f"Practitioner/{idel_id}"}))
    )
    assert theirs and all(
        any(p["actor"]["reference"] == f"Practitioner/{idel_id}" for p in r["participant"]) for r in theirs
    )


def test_service_request_maps_the_teleexpertise_status_and_consent(db_session, demo, coordination):
    cpts, _clock = demo
    gp_user = db_session.scalar(select(User).where(User.login.like("dr.%")).limit(1))
    assert gp_user is not None
    patient = db_session.scalar(
        select(Patient).where(Patient.cpts_id == cpts.id, Patient.attending_gp_id == gp_user.professional_id).limit(1)
    )
    held = factories.consent(db_session, patient, recorded_by=gp_user)
    withdrawn = factories.consent(db_session, patient, recorded_by=gp_user, withdrawn_at=utcnow())
    request = factories.teleexpertise_request(
        db_session, patient, requester=gp_user, specialty="cardiologie", consent_row=held
    )
    answered = factories.teleexpertise_request(
        db_session,
        patient,
        requester=gp_user,
        expert=db_session.scalar(select(Professional).where(Professional.specialty.is_not(None)).limit(1)),
        consent_row=withdrawn,
        state=TeleexpertiseState.ANSWERED,
    )
    db_session.commit()
    body = fhir_json(coordination.get(f"/fhir/ServiceRequest/{request.id}"), kind="ServiceRequest")
    validate(body)
    assert body["status"] == "active" and body["intent"] == "order"
    assert body["subject"] == {"reference": f"Patient/{patient.id}"}
    assert body["requester"] == {"reference": f"Practitioner/{gp_user.professional_id}"}
    assert body["code"]["coding"][0] == {
        "system": fhir.LOINC_SYSTEM,
        "code": fhir.TELEEXPERTISE_LOINC,
        "display": "Demande d'acte de télémédecine",
    }
    extensions = {e["url"]: e for e in body["extension"]}
    assert extensions[fhir.PATIENT_CONSENT_URL]["valueBoolean"] is True
    assert extensions[fhir.HUB_STATE_URL]["valueCoding"]["code"] == "submitted"
    done = fhir_json(coordination.get(f"/fhir/ServiceRequest/{answered.id}"))
    validate(done)
    assert done["status"] == "completed"
    assert done["extension"] == [{"url": fhir.PATIENT_CONSENT_URL, "valueBoolean": False}]
    found = entries(
        fhir_json(coordination.get("/fhir/ServiceRequest", query_string={"patient": f"Patient/{patient.id}"}))
    )
    assert [r["id"] for r in found] == [str(request.id), str(answered.id)]
    assert [r["status"] for r in found] == ["active", "completed"]


def test_fhir_needs_the_token_and_hides_what_the_caller_may_not_see(db_session, demo, client, api_as):
    cpts, _clock = demo
    patient = db_session.scalar(select(Patient).where(Patient.cpts_id == cpts.id).limit(1))
    validate(fhir_json(client.get(f"/fhir/Patient/{patient.id}"), 401, kind="OperationOutcome"))
    stranger_cpts = factories.cpts(db_session)
    stranger = factories.clinician(db_session, stranger_cpts)
    db_session.commit()
    as_stranger = api_as(stranger)
    before = db_session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    validate(fhir_json(as_stranger.get(f"/fhir/Patient/{patient.id}"), 404, kind="OperationOutcome"))
    refusal = db_session.scalar(select(AuditEvent).where(AuditEvent.id > before, AuditEvent.outcome == "denied"))
    assert refusal is not None and refusal.action == "patient.read"
    assert fhir_json(as_stranger.get("/fhir/Patient"))["total"] == 0
    assert fhir_json(as_stranger.get("/fhir/Appointment"))["total"] == 0


def test_searches_run_a_fixed_number_of_statements_whatever_the_page(db_session, demo, coordination, engine):
    statements = []

    def count(*_args):
        statements.append(1)

    def run(url, n):
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            fhir_json(coordination.get(url, query_string={"_count": n}))
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    # The token's first use of the day is recorded once: a warm-up call, so that it counts in neither run.
    fhir_json(coordination.get("/fhir/Organization"))
    for url in (
        "/fhir/Slot",
        "/fhir/sas/Slot",
        "/fhir/Appointment",
        "/fhir/Schedule",
        "/fhir/Patient",
        "/fhir/Practitioner",
        "/fhir/ServiceRequest",
    ):
        assert run(url, 2) == run(url, 40), url


def test_sas_export_gives_the_free_teleconsultation_slots_in_the_sas_shape(db_session, demo, coordination):
    cpts, _clock = demo
    bundle = fhir_json(coordination.get("/fhir/sas/Slot", query_string={"_count": 200}))
    resources = entries(bundle)
    assert resources
    teleconsultation = set(
        db_session.scalars(
            select(Slot.id)
            .join(SessionProgram, SessionProgram.id == Slot.program_id)
            .where(SessionProgram.cpts_id == cpts.id, SessionProgram.kind.in_(fhir.TELECONSULTATION_KINDS))
        )
    )
    held = set(db_session.scalars(select(Appointment.slot_id).where(Appointment.state != AppointmentState.CANCELLED)))
    for slot in resources:
        assert int(slot["id"]) in teleconsultation and int(slot["id"]) not in held
        assert slot["status"] == "free" and slot["start"] >= "2026-11-26T09:00:00Z"
        assert slot["meta"]["security"][0]["code"] == "CPTS"
        assert slot["serviceType"][0]["coding"][0] == {
            "system": fhir.ACT_CODE_SYSTEM,
            "code": "VR",
            "display": "virtual",
        }
        assert slot["schedule"]["reference"].startswith("Schedule/")


def test_a_professional_finds_only_the_patients_and_sessions_of_their_care(db_session, demo, api_as):
    cpts, _clock = demo
    nurse = factories.clinician(db_session, cpts)
    patient = db_session.scalar(select(Patient).where(Patient.cpts_id == cpts.id).limit(1))
    db_session.commit()
    as_nurse = api_as(nurse)
    assert fhir_json(as_nurse.get("/fhir/Patient"))["total"] == 0
    fhir_json(as_nurse.get(f"/fhir/Patient/{patient.id}"), 404, kind="OperationOutcome")
    factories.in_care_team(db_session, patient, nurse.professional)
    db_session.commit()
    assert [r["id"] for r in entries(fhir_json(as_nurse.get("/fhir/Patient")))] == [str(patient.id)]
    validate(fhir_json(as_nurse.get(f"/fhir/Patient/{patient.id}"), kind="Patient"))
    # The demo's sessions are other professionals': none is listed, and each read is a 404.
    assert fhir_json(as_nurse.get("/fhir/Appointment"))["total"] == 0
    session_id = db_session.scalar(select(Appointment.id).where(Appointment.cpts_id == cpts.id).limit(1))
    fhir_json(as_nurse.get(f"/fhir/Appointment/{session_id}"), 404, kind="OperationOutcome")
