"""Whole-series availability through the API (item 5): every occurrence checked at once and each conflict named
before anything is saved; then all or nothing (409, nothing saved) or the free ones."""

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import object_session

from hub.models import Appointment, AuditEvent, PlaceKind, ProgramClosure, Slot
from scheduling.slots import generate_slots
from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.factories import NOW, PARIS
from workflows import appointments

pytestmark = pytest.mark.usefixtures("clock")

FIRST = dt.datetime(2026, 11, 23, 14, 0, tzinfo=PARIS)
# Every other Monday from 23 November: the fifth is 18 January.
EVERY_OTHER = [dt.datetime(2026, 11, 23, 14, tzinfo=PARIS) + dt.timedelta(weeks=2 * n) for n in range(6)]


def slot_at(session, program, at: dt.datetime) -> Slot:
    return session.scalars(
        select(Slot).where(Slot.program_id == program.id, Slot.starts_at == at.astimezone(dt.UTC))
    ).one()


def appointments_of(session, patient) -> int:
    return session.scalar(select(func.count()).select_from(Appointment).where(Appointment.patient_id == patient.id))


@pytest.fixture
def program(db_session, territory):
    generate_slots(db_session, territory.program, now=NOW)
    return territory.program


def body(territory, program, **extra):
    return {"slot_id": slot_at_id(program, FIRST), "patient_id": territory.patient.id, "every": 2, "count": 6} | extra


def slot_at_id(program, at):
    return slot_at(object_session(program), program, at).id


def take_the_cardiologist(db_session, territory, program, at):
    """Another patient booked at that time: the cardiologist is no longer free."""
    other = factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator)
    appointments.book(
        db_session,
        territory.coordinator,
        slot=slot_at(db_session, program, at),
        patient=other,
        place_kind=PlaceKind.DEDICATED_PLACE,
        accompanying=territory.other_idel,
    )
    db_session.commit()


def test_the_check_lists_every_occurrence_and_saves_nothing(api_as, db_session, territory, program):
    response = api_as(territory.coordinator).post("/api/v1/series-bookings/check", json=body(territory, program))
    assert response.status_code == 200, response.get_json()
    found = response.get_json()
    assert [o["starts_at"] for o in found["occurrences"]] == [d.astimezone(dt.UTC).isoformat() for d in EVERY_OTHER]
    assert (found["free"], found["conflicting"]) == (6, 0)
    assert found["occurrences"][4]["label"] == "lundi 18 janvier 2027, 14 h 00"
    assert appointments_of(db_session, territory.patient) == 0


def test_a_conflict_in_the_fifth_occurrence_is_named_and_all_or_nothing_saves_nothing(
    api_as, db_session, territory, program
):
    take_the_cardiologist(db_session, territory, program, EVERY_OTHER[4])
    client = api_as(territory.coordinator)
    found = client.post("/api/v1/series-bookings/check", json=body(territory, program)).get_json()
    fifth = found["occurrences"][4]
    assert not fifth["ok"] and fifth["problems"] == [f"{territory.cardiologist.full_name} déjà réservé(e)"]
    assert [o["ok"] for o in found["occurrences"]] == [True] * 4 + [False, True]
    refused = assert_problem(client.post("/api/v1/series-bookings", json=body(territory, program)), 409)
    assert refused["title"] == "Série en conflit"
    assert f"lundi 18 janvier 2027, 14 h 00 : {territory.cardiologist.full_name} déjà réservé(e)" in refused["detail"]
    assert [o["starts_at"] for o in refused["occurrences"]] == [EVERY_OTHER[4].astimezone(dt.UTC).isoformat()]
    assert appointments_of(db_session, territory.patient) == 0


def test_the_free_ones_only_books_five_and_lists_the_one_left_out(api_as, db_session, territory, program):
    take_the_cardiologist(db_session, territory, program, EVERY_OTHER[4])
    response = api_as(territory.coordinator).post(
        "/api/v1/series-bookings", json=body(territory, program, all_or_nothing=False)
    )
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert [a["starts_at"] for a in answer["booked"]] == [
        d.astimezone(dt.UTC).isoformat() for i, d in enumerate(EVERY_OTHER) if i != 4
    ]
    assert [o["label"] for o in answer["left_out"]] == ["lundi 18 janvier 2027, 14 h 00"]
    assert appointments_of(db_session, territory.patient) == 5
    audit = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "appointment.book_series")).one()
    assert audit.actor_user_id == territory.coordinator.id


def test_every_reason_is_named(api_as, db_session, territory, program):
    """The patient elsewhere, a closure, a full group session: each occurrence says why."""
    elsewhere = factories.program(db_session, territory.cpts)
    busy_at = factories.slot(db_session, elsewhere, EVERY_OTHER[1].astimezone(dt.UTC))
    appointments.book(
        db_session,
        territory.coordinator,
        slot=busy_at,
        patient=territory.patient,
        place_kind=PlaceKind.DEDICATED_PLACE,
        accompanying=territory.other_idel,
    )
    program.closures.append(
        ProgramClosure(first_day=dt.date(2026, 12, 21), last_day=dt.date(2026, 12, 21), reason="Congés")
    )
    db_session.flush()
    generate_slots(db_session, program, now=NOW)
    db_session.commit()
    found = api_as(territory.coordinator).post("/api/v1/series-bookings/check", json=body(territory, program))
    problems = [o["problems"] for o in found.get_json()["occurrences"]]
    assert problems[1] == ["patient déjà en séance"]
    assert problems[2] == ["fermeture (Congés)"]
    assert problems[0] == problems[3] == problems[4] == problems[5] == []


def test_a_public_holiday_and_the_end_of_the_horizon_are_named(api_as, db_session, territory, program):
    program.horizon_weeks = 19  # up to Monday 22 March 2027, then Easter Monday
    generate_slots(db_session, program, now=NOW)
    db_session.commit()
    first = dt.datetime(2027, 3, 22, 14, 0, tzinfo=PARIS)
    found = api_as(territory.coordinator).post(
        "/api/v1/series-bookings/check",
        json={
            "slot_id": slot_at(db_session, program, first).id,
            "patient_id": territory.patient.id,
            "until": "2027-04-05",
        },
    )
    problems = [(o["label"], o["problems"]) for o in found.get_json()["occurrences"]]
    assert problems == [
        ("lundi 22 mars 2027, 14 h 00", []),
        ("lundi 29 mars 2027, 14 h 00", ["jour férié"]),
        ("lundi 5 avril 2027, 14 h 00", ["créneau pas encore ouvert (au-delà de l'horizon du programme)"]),
    ]


def test_a_full_group_session_is_named(api_as, db_session, territory):
    group = factories.program(db_session, territory.cpts, capacity=2, valid_from=dt.date(2026, 11, 16))
    generate_slots(db_session, group, now=NOW)
    for _ in range(2):
        other = factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator)
        appointments.book(
            db_session,
            territory.coordinator,
            slot=slot_at(db_session, group, EVERY_OTHER[1]),
            patient=other,
            place_kind=PlaceKind.DEDICATED_PLACE,
        )
    db_session.commit()
    payload = {"slot_id": slot_at(db_session, group, FIRST).id, "patient_id": territory.patient.id}
    found = api_as(territory.coordinator).post("/api/v1/series-bookings/check", json=payload | {"every": 2, "count": 3})
    assert [o["problems"] for o in found.get_json()["occurrences"]] == [[], ["séance complète"], []]
    booked = api_as(territory.coordinator).post(
        "/api/v1/series-bookings", json=payload | {"every": 2, "count": 3, "all_or_nothing": False}
    )
    assert booked.status_code == 201 and len(booked.get_json()["booked"]) == 2


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"until": "2027-01-31"}, "count"),
        ({"count": None}, "count"),
        ({"every": 13}, "every"),
        ({"count": 53}, "count"),
    ],
)
def test_a_series_needs_a_count_or_an_end_and_a_sane_rhythm(api_as, db_session, territory, program, extra, field):
    payload = {k: v for k, v in (body(territory, program) | extra).items() if v is not None}
    refused = assert_problem(api_as(territory.coordinator).post("/api/v1/series-bookings/check", json=payload), 422)
    assert field in refused["errors"]


def test_a_patient_of_another_cpts_is_not_found_and_nothing_is_saved(api_as, db_session, territory, program):
    other_cpts = factories.cpts(db_session, "CPTS voisine")
    stranger = factories.consenting_patient(db_session, other_cpts, recorded_by=territory.coordinator)
    db_session.commit()
    response = api_as(territory.coordinator).post(
        "/api/v1/series-bookings", json=body(territory, program, patient_id=stranger.id)
    )
    assert_problem(response, 404)
    assert appointments_of(db_session, stranger) == 0


def test_a_patient_not_eligible_is_told_once_before_any_occurrence(api_as, db_session, territory, program, newcomer):
    response = api_as(territory.coordinator).post(
        "/api/v1/series-bookings/check", json=body(territory, program, patient_id=newcomer.id)
    )
    refused = assert_problem(response, 422)
    assert "occurrences" not in refused and "éligibilité" in refused["detail"].lower()


def test_an_idel_of_another_cpts_is_refused_beside_the_field(api_as, db_session, territory, program):
    other_cpts = factories.cpts(db_session, "CPTS voisine")
    outsider = factories.professional(db_session, other_cpts, accompanies_teleconsultation=True)
    db_session.commit()
    response = api_as(territory.coordinator).post(
        "/api/v1/series-bookings/check", json=body(territory, program, accompanying_id=outsider.id)
    )
    assert assert_problem(response, 422)["errors"] == {"accompanying_id": "Professionnel inconnu dans la CPTS."}
