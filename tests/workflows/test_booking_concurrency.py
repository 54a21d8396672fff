"""R10 / R11 / R13: no double booking under concurrent requests, on the real databases."""

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from hub.models import Allocation, Appointment, PlaceKind, Profession, Role, Slot
from scheduling.bookings import BookingConflict
from tests import factories
from tests.factories import MONDAY_14H, NOW
from workflows import appointments

pytestmark = pytest.mark.concurrency


@pytest.fixture
def contested(committed):
    """One program, one slot, and 50 patients each with their own IDEL: they all want the cardiologist."""
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        coordinator = factories.user(session, org, Role.COORDINATOR)
        program = factories.program(session, org)
        slot = factories.slot(session, program, MONDAY_14H.astimezone(dt.UTC))
        next_slot = factories.slot(session, program, (MONDAY_14H + dt.timedelta(minutes=15)).astimezone(dt.UTC))
        pairs = []
        for _ in range(50):
            patient = factories.consenting_patient(session, org, recorded_by=coordinator)
            idel = factories.professional(session, org, Profession.NURSE, accompanies_teleconsultation=True)
            pairs.append((patient.id, idel.id))
        session.commit()
        return factory, coordinator.id, slot.id, next_slot.id, pairs, program.id


def attempt(factory, coordinator_id, slot_id, patient_id, idel_id, barrier, results):
    from hub.models import Patient, Professional, User

    barrier.wait()
    try:
        with factory() as session:
            appointments.book(
                session,
                session.get(User, coordinator_id),
                slot=session.get(Slot, slot_id),
                patient=session.get(Patient, patient_id),
                place_kind=PlaceKind.DEDICATED_PLACE,
                accompanying=session.get(Professional, idel_id),
                now=NOW,
            )
            session.commit()
        results.append("booked")
    except BookingConflict as exc:
        results.append(("conflict", exc.status, exc.extra["resource"]["kind"], exc.detail))
    except Exception as exc:  # reported, and fails the test below
        results.append(("error", repr(exc)))


def run_threads(targets):
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


def test_fifty_simultaneous_bookings_of_one_slot_give_one_success(contested):
    factory, coordinator_id, slot_id, _next, pairs, program_id = contested
    barrier = threading.Barrier(len(pairs))
    results: list = []
    run_threads([lambda p=p, i=i: attempt(factory, coordinator_id, slot_id, p, i, barrier, results) for p, i in pairs])
    assert [r for r in results if r[0] == "error"] == []
    assert results.count("booked") == 1, results
    conflicts = [r for r in results if r != "booked"]
    assert len(conflicts) == 49
    assert all(r[0] == "conflict" and r[1] == 409 and r[2] == "professional" for r in conflicts), conflicts
    assert all("déjà réservé" in r[3] for r in conflicts)
    with factory() as session:
        booked = session.scalars(select(Appointment).where(Appointment.program_id == program_id)).all()
        assert len(booked) == 1
        holds = session.scalar(
            select(func.count()).select_from(Allocation).where(Allocation.appointment_id == booked[0].id)
        )
        assert holds == 3, "patient, cardiologist, IDEL: all of them, never part"
        orphan_holds = session.scalar(
            select(func.count())
            .select_from(Allocation)
            .join(Appointment)
            .where(Appointment.program_id == program_id, Appointment.id != booked[0].id)
        )
        assert orphan_holds == 0


def test_forty_bookings_crossing_on_two_resources_give_one_success_and_no_deadlock(contested):
    """Two back-to-back slots (the cardiologist free for both) and one IDEL for all forty patients, whose windows
    overlap: every booking meets the others on the IDEL, half of them on the cardiologist too. One wins; the others
    get a clear 409, never a deadlock or a partial hold (PostgreSQL: the holds go in one statement, in one order)."""
    factory, coordinator_id, slot_id, next_slot_id, pairs, program_id = contested
    idel_id = pairs[0][1]
    work = [(slot_id if n % 2 else next_slot_id, patient_id) for n, (patient_id, _own) in enumerate(pairs[:40])]
    barrier = threading.Barrier(len(work))
    results: list = []
    run_threads([lambda s=s, p=p: attempt(factory, coordinator_id, s, p, idel_id, barrier, results) for s, p in work])
    assert [r for r in results if r[0] == "error"] == []
    assert results.count("booked") == 1, results
    assert all(r[0] == "conflict" and r[1] == 409 for r in results if r != "booked")
    with factory() as session:
        holds = session.scalar(
            select(func.count()).select_from(Allocation).join(Appointment).where(Appointment.program_id == program_id)
        )
        assert holds == 3, "the winner's patient, cardiologist and IDEL, nothing of the others"


def test_twenty_concurrent_writers_on_back_to_back_slots_all_succeed(contested):
    """Back-to-back slots do not collide (half-open ranges) and no writer sees "database is locked"."""
    factory, coordinator_id, slot_id, next_slot_id, pairs, _program = contested
    barrier = threading.Barrier(2)
    results: list = []
    (p1, i1), (p2, i2) = pairs[:2]
    run_threads(
        [
            lambda: attempt(factory, coordinator_id, slot_id, p1, i1, barrier, results),
            lambda: attempt(factory, coordinator_id, next_slot_id, p2, i2, barrier, results),
        ]
    )
    assert results == ["booked", "booked"]


def test_twenty_writers_on_distinct_resources_never_see_a_locked_database(committed):
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        coordinator = factories.user(session, org, Role.COORDINATOR)
        work = []
        for n in range(20):
            program = factories.program(session, org)
            slot = factories.slot(session, program, (MONDAY_14H + dt.timedelta(hours=n)).astimezone(dt.UTC))
            patient = factories.consenting_patient(session, org, recorded_by=coordinator)
            idel = factories.professional(session, org, Profession.NURSE)
            work.append((slot.id, patient.id, idel.id))
        session.commit()
    barrier = threading.Barrier(len(work))
    results: list = []
    run_threads([lambda s=s, p=p, i=i: attempt(factory, coordinator.id, s, p, i, barrier, results) for s, p, i in work])
    assert results == ["booked"] * 20


def test_the_database_refuses_an_overlapping_allocation_inserted_in_raw_sql(db_session, territory):
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("the exclusion constraint is PostgreSQL's; SQLite serialises the booking transaction")
    t = territory
    slot = factories.slot(db_session, t.program, MONDAY_14H.astimezone(dt.UTC))
    appointment = appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
    )
    db_session.flush()
    overlapping = (
        "INSERT INTO allocations (appointment_id, resource_kind, resource_id, starts_at, ends_at) "
        "VALUES (:appointment, 'professional', :pro, :start, :end)"
    )
    start = MONDAY_14H.astimezone(dt.UTC)
    with pytest.raises(IntegrityError, match="ex_allocations_no_overlap"), db_session.begin_nested():
        db_session.execute(
            text(overlapping),
            {
                "appointment": appointment.id,
                "pro": t.cardiologist.id,
                "start": start + dt.timedelta(minutes=5),
                "end": start + dt.timedelta(minutes=10),
            },
        )
    with db_session.begin_nested():  # back-to-back is fine
        db_session.execute(
            text(overlapping),
            {
                "appointment": appointment.id,
                "pro": t.cardiologist.id,
                "start": start + dt.timedelta(minutes=15),
                "end": start + dt.timedelta(minutes=30),
            },
        )


def test_a_confirmation_racing_the_widening_job_never_leaves_a_confirmed_visit_without_its_idel(committed):
    """The own IDEL confirms while the expiry job widens the offer: whatever the order, a confirmed visit
    has its IDEL and that IDEL holds the window."""
    from hub.models import User

    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        coordinator = factories.user(session, org, Role.COORDINATOR)
        program = factories.program(session, org)
        runs = []
        for n in range(8):
            slot = factories.slot(session, program, (MONDAY_14H + dt.timedelta(days=7 * n)).astimezone(dt.UTC))
            patient = factories.consenting_patient(session, org, recorded_by=coordinator)
            idel = factories.professional(session, org, Profession.NURSE, accompanies_teleconsultation=True)
            factories.in_care_team(session, patient, idel)
            idel_user = factories.user(session, org, Role.PROFESSIONAL, professional_row=idel)
            appointment = appointments.book(
                session, coordinator, slot=slot, patient=patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
            )
            runs.append((appointment.id, idel_user.id))
        factories.professional(session, org, Profession.NURSE, accompanies_teleconsultation=True)
        session.commit()

    def confirm(appointment_id, user_id, barrier, errors):
        barrier.wait()
        try:
            with factory() as session:
                appointments.confirm(
                    session, session.get(User, user_id), session.get(Appointment, appointment_id), now=NOW
                )
                session.commit()
        except Exception as exc:  # a refused confirmation is a valid outcome of the race
            errors.append(exc)

    def widen(appointment_id, barrier):
        barrier.wait()
        with factory() as session:
            appointments.offer_to_other_idels(session, session.get(Appointment, appointment_id), now=NOW)
            session.commit()

    for appointment_id, user_id in runs:
        barrier, errors = threading.Barrier(2), []
        run_threads(
            [
                lambda a=appointment_id, u=user_id, b=barrier, e=errors: confirm(a, u, b, e),
                lambda a=appointment_id, b=barrier: widen(a, b),
            ]
        )
    with factory() as session:
        for appointment_id, _user in runs:
            appointment = session.get(Appointment, appointment_id)
            if appointment.state.value == "confirmed":
                assert appointment.accompanying_id is not None
                held = {a.resource_id for a in appointment.allocations if a.resource_kind.value == "professional"}
                assert appointment.accompanying_id in held
