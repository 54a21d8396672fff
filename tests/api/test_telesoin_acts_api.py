"""A télésoin booking through the API names its act: an IDEL books each of the four eligible acts, a kiné the act
the session replaces (its coefficient prices the TMK); each ineligible case is a 422 problem+json naming the rule,
nothing booked; the 201 body warns when the performer's télésoin share reaches 15 %."""

import datetime as dt
import json
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from hub.models import (
    Allocation,
    Appointment,
    AppointmentKind,
    AuditEvent,
    DeclaredActivity,
    OrganisationKind,
    Profession,
    Role,
    TelesoinActCode,
)
from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.factories import PARIS
from tests.web.test_booking_eligibility_pages import last_audit_id, nothing_booked
from workflows import fees

pytestmark = pytest.mark.usefixtures("clock")

IDEL_ACTS = [
    TelesoinActCode.HEART_FAILURE_COPD_SURVEILLANCE,
    TelesoinActCode.MEDICATION_INTAKE,
    TelesoinActCode.INSULIN_SURVEILLANCE,
    TelesoinActCode.REMOTE_DRESSING,
]
SEEN = "2026-10-01"  # an in-person care the booker attests, a few weeks before the sessions
DRESSED = "2026-11-10"  # the last in-person dressing


def at(day: dt.date, hour: int = 9) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=PARIS).astimezone(dt.UTC)


@pytest.fixture
def practice(db_session, territory):
    """An IDEL of a group practice (a cabinet with a fellow nurse) and her télésoin program; an IDEL elsewhere."""
    t = territory
    cabinet = factories.organisation(db_session, t.cpts, kind=OrganisationKind.PRACTICE, name="Cabinet infirmier")
    nurse, colleague, stranger = (
        factories.professional(db_session, t.cpts, Profession.NURSE, does_telesoin=True) for _ in range(3)
    )
    nurse.organisations, colleague.organisations = [cabinet], [cabinet]
    program = factories.program(db_session, t.cpts, telesoin=True, performer=nurse, name="Télésoin IDEL")
    db_session.flush()
    return SimpleNamespace(t=t, nurse=nurse, colleague=colleague, stranger=stranger, program=program)


@pytest.fixture
def kine(db_session, territory):
    """A kiné, their account and their télésoin program."""
    t = territory
    row = factories.professional(db_session, t.cpts, Profession.PHYSIOTHERAPIST, does_telesoin=True)
    user = factories.user(db_session, t.cpts, Role.PROFESSIONAL, professional_row=row)
    program = factories.program(
        db_session, t.cpts, telesoin=True, performer=row, name="Télérééducation", slot_minutes=30
    )
    return SimpleNamespace(t=t, kine=row, user=user, program=program)


def new_patient(db_session, t):
    return factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)


def booking(slot, patient, **fields) -> dict:
    return {"slot_id": slot.id, "patient_id": patient.id, "place_kind": "domicile", **fields}


def book(api, db_session, program, patient, day: dt.date, hour: int = 9, **fields):
    slot = factories.slot(db_session, program, at(day, hour))
    db_session.commit()
    return api.post("/api/v1/appointments", json=booking(slot, patient, **fields))


def nothing_booked_remotely(session, patient, *, audited_after: int) -> bool:
    """No télésoin session, hold or booking audit line for the patient (the in-person cares a test lays stay)."""
    booked = select(Appointment.id).where(
        Appointment.patient_id == patient.id, Appointment.kind == AppointmentKind.TELESOIN
    )
    held = session.scalar(select(func.count()).where(Allocation.appointment_id.in_(booked)))
    audited = session.scalar(
        select(func.count()).where(AuditEvent.action == "appointment.book", AuditEvent.id > audited_after)
    )
    return session.scalar(select(func.count()).select_from(booked.subquery())) == held == audited == 0


def refused(db_session, api, program, patient, day, rule: str, hour: int = 9, **fields) -> dict:
    """The booking refused with the rule named, and nothing of it saved."""
    audited = last_audit_id(db_session)
    problem = assert_problem(book(api, db_session, program, patient, day, hour, **fields), 422)
    assert rule in problem["detail"], problem
    assert nothing_booked_remotely(db_session, patient, audited_after=audited)
    return problem


@pytest.mark.parametrize("act", IDEL_ACTS)
def test_an_idel_books_each_of_the_four_acts(api_as, db_session, practice, act):
    api = api_as(practice.t.coordinator)
    patient = new_patient(db_session, practice.t)
    dressing = {"last_in_person_dressing_on": DRESSED} if act is TelesoinActCode.REMOTE_DRESSING else {}
    fields = {"telesoin_act": act.value, "last_in_person_contact_on": SEEN, **dressing}
    audited_before = db_session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
    response = book(api, db_session, practice.program, patient, dt.date(2026, 11, 24), **fields)
    assert response.status_code == 201, response.json
    body = response.json
    assert (body["telesoin_act"], body["act_coefficient"]) == (
        act.value,
        f"{fees.TELESOIN_ACTS[Profession.NURSE][act]:.2f}",
    )
    assert body["telesoin_act_label"] == api.get(f"/api/v1/appointments/{body['id']}").json["telesoin_act_label"]
    assert body["telesoin_act_label"] and body["warnings"] == []
    appointment = db_session.get(Appointment, body["id"])
    assert appointment.telesoin_act == act.value and appointment.last_in_person_contact_on == dt.date(2026, 10, 1)
    attested = db_session.scalar(
        select(AuditEvent).where(
            AuditEvent.action == "appointment.in_person_attested",
            AuditEvent.target_id == str(appointment.id),
            AuditEvent.id > audited_before,
        )
    )
    assert json.loads(attested.details) == {"last_in_person_contact_on": SEEN}


def test_a_patient_seen_by_a_nurse_of_the_practice_needs_no_attestation(api_as, db_session, practice):
    t = practice.t
    api = api_as(t.coordinator)
    known, elsewhere = new_patient(db_session, t), new_patient(db_session, t)
    factories.in_person_care(db_session, known, practice.colleague, dt.date(2026, 1, 5), created_by=t.coordinator)
    factories.in_person_care(db_session, elsewhere, practice.stranger, dt.date(2026, 6, 1), created_by=t.coordinator)
    act = {"telesoin_act": "surveillance_insuline"}
    response = book(api, db_session, practice.program, known, dt.date(2026, 11, 24), **act)
    assert response.status_code == 201, response.json
    assert response.json["last_in_person_contact_on"] is None
    refused(
        db_session, api, practice.program, elsewhere, dt.date(2026, 11, 25), "ou un·e infirmier·e de son cabinet", **act
    )


@pytest.mark.parametrize("how", ["declared", "in the hub"])
def test_an_idel_is_refused_a_patient_unknown_for_thirteen_months(api_as, db_session, practice, how):
    t = practice.t
    patient = new_patient(db_session, t)
    fields = {"telesoin_act": "prise_medicamenteuse"}
    if how == "declared":
        fields["last_in_person_contact_on"] = "2025-10-20"
    else:
        factories.in_person_care(db_session, patient, practice.nurse, dt.date(2025, 10, 20), created_by=t.coordinator)
    problem = refused(
        db_session,
        api_as(t.coordinator),
        practice.program,
        patient,
        dt.date(2026, 11, 23),
        "dans les 12 mois",
        **fields,
    )
    assert "depuis le 23/11/2025" in problem["detail"]


def test_an_attested_care_cannot_be_in_the_future(api_as, db_session, practice):
    t = practice.t
    patient = new_patient(db_session, t)
    fields = {"telesoin_act": "prise_medicamenteuse", "last_in_person_contact_on": "2026-11-17"}
    problem = refused(db_session, api_as(t.coordinator), practice.program, patient, dt.date(2026, 11, 23), "", **fields)
    assert "dans le futur" in problem["errors"]["last_in_person_contact_on"]


def test_an_unknown_act_is_refused(api_as, db_session, practice):
    t = practice.t
    api = api_as(t.coordinator)
    patient = new_patient(db_session, t)
    day = dt.date(2026, 11, 23)
    problem = refused(db_session, api, practice.program, patient, day, "", hour=9, telesoin_act="injection")
    assert problem["errors"]["telesoin_act"].startswith("Valeur inconnue")
    a_kines = {"telesoin_act": "reeducation_membre_rachis", "last_in_person_contact_on": SEEN}
    refused(db_session, api, practice.program, patient, day, "un·e IDEL ne peut réaliser que", hour=10, **a_kines)
    problem = refused(db_session, api, practice.program, patient, day, "", hour=11)
    assert problem["errors"] == {"telesoin_act": "Choisissez l'acte de la séance de télésoin."}


def test_an_assisted_teleconsultation_takes_no_telesoin_field(api_as, db_session, territory, slot):
    """The act's fields belong to a télésoin session: on any other, they are refused by name, nothing saved."""
    audited = last_audit_id(db_session)
    fields = {"act_coefficient": "8.5", "last_in_person_contact_on": SEEN}
    answer = api_as(territory.coordinator).post(
        "/api/v1/appointments",
        json={"slot_id": slot.id, "patient_id": territory.patient.id, "place_kind": "lieu_dedie", **fields},
    )
    problem = assert_problem(answer, 422)
    assert sorted(problem["errors"]) == ["act_coefficient", "last_in_person_contact_on"]
    assert nothing_booked_remotely(db_session, territory.patient, audited_after=audited)


@pytest.mark.parametrize("act", ["bilan_initial", "renouvellement_bilan"])
def test_a_kine_assessment_is_refused(api_as, db_session, kine, act):
    patient = new_patient(db_session, kine.t)
    fields = {"telesoin_act": act, "last_in_person_contact_on": SEEN}
    refused(
        db_session,
        api_as(kine.t.coordinator),
        kine.program,
        patient,
        dt.date(2026, 11, 23),
        "jamais en télésoin",
        **fields,
    )


def test_a_kine_needs_their_own_in_person_care_within_twelve_months(api_as, db_session, kine, practice):
    t = kine.t
    patient = new_patient(db_session, t)
    factories.in_person_care(db_session, patient, practice.nurse, dt.date(2026, 10, 1), created_by=t.coordinator)
    fields = {"telesoin_act": "reeducation_respiratoire"}
    refused(
        db_session, api_as(t.coordinator), kine.program, patient, dt.date(2026, 11, 23), kine.kine.full_name, **fields
    )


def test_remote_dressing_needs_an_earlier_in_person_dressing(api_as, db_session, practice):
    t = practice.t
    api = api_as(t.coordinator)
    patient = new_patient(db_session, t)
    dressing = {"telesoin_act": "suivi_pansement", "last_in_person_contact_on": SEEN}
    refused(
        db_session,
        api,
        practice.program,
        patient,
        dt.date(2026, 11, 23),
        "pansement déjà réalisé en présentiel",
        **dressing,
    )
    today = {"last_in_person_dressing_on": "2026-11-16"}
    audited = last_audit_id(db_session)
    slot = factories.slot(db_session, practice.program, at(dt.date(2026, 11, 16), 15))
    db_session.commit()
    problem = assert_problem(api.post("/api/v1/appointments", json=booking(slot, patient, **dressing, **today)), 422)
    assert "le jour d'un pansement en présentiel" in problem["detail"]
    assert nothing_booked(db_session, patient, audited_after=audited)


def test_at_most_four_remote_dressings_a_month_counting_those_booked(api_as, db_session, practice):
    t = practice.t
    api = api_as(t.coordinator)
    patient = new_patient(db_session, t)
    dressing = {
        "telesoin_act": "suivi_pansement",
        "last_in_person_dressing_on": DRESSED,
        "last_in_person_contact_on": SEEN,
    }
    for day in (1, 2, 3, 4):
        response = book(api, db_session, practice.program, patient, dt.date(2026, 12, day), **dressing)
        assert response.status_code == 201, response.json
    audited = last_audit_id(db_session)
    problem = assert_problem(book(api, db_session, practice.program, patient, dt.date(2026, 12, 7), **dressing), 422)
    assert "Au plus 4 suivis de pansement à distance par mois" in problem["detail"]
    assert (
        db_session.scalar(select(AuditEvent.id).where(AuditEvent.action == "appointment.book", AuditEvent.id > audited))
        is None
    )
    assert book(api, db_session, practice.program, patient, dt.date(2027, 1, 4), **dressing).status_code == 201


def test_an_assisted_teleconsultation_has_no_telesoin_act(api_as, db_session, territory, slot):
    problem = assert_problem(
        api_as(territory.coordinator).post(
            "/api/v1/appointments",
            json=booking(slot, territory.patient, place_kind="lieu_dedie", telesoin_act="surveillance_insuline"),
        ),
        422,
    )
    assert problem["errors"]["telesoin_act"] == "Seule une séance de télésoin porte un acte de télésoin."


def test_a_kines_tmk_entry_carries_the_coefficient_of_the_act(api_as, db_session, kine, clock):
    t = kine.t
    patient = new_patient(db_session, t)
    fields = {"telesoin_act": "reeducation_membre_rachis", "act_coefficient": "8.5", "last_in_person_contact_on": SEEN}
    coordinator, therapist = api_as(t.coordinator), api_as(kine.user)
    booked = book(coordinator, db_session, kine.program, patient, dt.date(2026, 11, 23), **fields)
    assert booked.status_code == 201, booked.json
    assert booked.json["act_coefficient"] == "8.50"
    url = f"/api/v1/appointments/{booked.json['id']}"
    assert coordinator.post(f"{url}/confirm").status_code == 200
    check_in = {"identity_method": "document", "patient_location": "Domicile, salon", "callback_phone": "0612345678"}
    assert therapist.post(f"{url}/check-in", json=check_in).status_code == 200
    checklist = {"camera": True, "sound": True, "light": True, "privacy": True}
    assert therapist.post(f"{url}/checklist", json=checklist).status_code == 200
    clock.move_to(dt.datetime.fromisoformat(booked.json["starts_at"]) + dt.timedelta(minutes=10))
    assert therapist.put(f"{url}/rituals", json=factories.KINE_RITUALS).status_code == 200
    done = therapist.post(f"{url}/complete")
    assert done.status_code == 200, done.json
    entries = therapist.get(f"/api/v1/fees?professional_id={kine.kine.id}").json["items"]
    assert [(e["code"], e["coefficient"], e["amount"]) for e in entries] == [("TMK", "8.50", "18.28")]  # 2.15 × 8.5


def test_the_usual_coefficient_prices_the_act_when_none_is_given(api_as, db_session, kine):
    patient = new_patient(db_session, kine.t)
    fields = {"telesoin_act": "reeducation_avc", "last_in_person_contact_on": SEEN}
    booked = book(api_as(kine.t.coordinator), db_session, kine.program, patient, dt.date(2026, 11, 23), **fields)
    assert booked.status_code == 201, booked.json
    assert booked.json["act_coefficient"] == "9.00"


@pytest.fixture
def kine_near_the_warning(db_session, kine):
    """1,200 € declared over the rolling year and 172 € of TMK (14.3 %): a session at 7.5 (16.13 €) takes the
    share to 15.7 %, past the warning, short of the limit."""
    for month in range(1, 13):
        year = 2025 if month == 12 else 2026
        db_session.add(DeclaredActivity(professional_id=kine.kine.id, year=year, month=month, amount=Decimal(100)))
    for n in range(10):
        day, key = dt.date(2026, 10, 1 + n), f"warn:{kine.kine.id}:{n}"
        fees.accrue(db_session, fees.Act(kine.kine, "TMK", day, key, coefficient=Decimal(8), is_remote_care=True))
    return kine


def test_the_201_body_warns_past_fifteen_percent(api_as, db_session, kine_near_the_warning):
    kine = kine_near_the_warning
    fields = {"telesoin_act": "reeducation_membre_rachis", "last_in_person_contact_on": SEEN}
    api = api_as(kine.t.coordinator)
    booked = book(api, db_session, kine.program, new_patient(db_session, kine.t), dt.date(2026, 11, 23), **fields)
    assert booked.status_code == 201, booked.json
    assert booked.json["warnings"] == [
        f"Attention : avec cette séance, le télésoin de {kine.kine.full_name} atteint 15,7\u00a0% de son activité sur "
        "douze mois (alerte à 15\u00a0%, plafond à 20\u00a0%)."
    ]


def test_the_document_states_the_acts_and_the_coefficient(client):
    document = client.get("/api/v1/openapi.json").get_json()
    body = document["paths"]["/appointments"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    properties = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]["properties"]
    assert set(properties["telesoin_act"]["enum"]) == {code.value for code in TelesoinActCode}
    assert properties["act_coefficient"]["pattern"] and properties["last_in_person_contact_on"]["format"] == "date"
    created = document["paths"]["/appointments"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert "warnings" in document["components"]["schemas"][created["$ref"].rsplit("/", 1)[-1]]["properties"]
