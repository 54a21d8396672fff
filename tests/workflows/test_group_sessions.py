"""Group sessions: one slot, up to the program's capacity of participants, each with their own appointment; the
performer, room and kit held once for the slot. Capacity holds under fifty simultaneous bookings (item 2)."""

import datetime as dt
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.models import (
    Allocation,
    AllocationResource,
    Appointment,
    AppointmentState,
    FreedSlotTask,
    PlaceKind,
    Profession,
    Role,
    Slot,
    WaitingState,
    WaitingUrgency,
)
from hub.services import resources
from scheduling.bookings import BookingConflict
from tests import factories
from tests.factories import MONDAY_14H, NOW
from workflows import appointments, attendance, desk, referrals, waiting

START = MONDAY_14H.astimezone(dt.UTC)


def group_program(session, org, *, capacity: int = 6, **overrides):
    return factories.program(session, org, capacity=capacity, name="Éducation thérapeutique en groupe", **overrides)


def book(session, coordinator, slot, patient, idel=None):
    return appointments.book(
        session,
        coordinator,
        slot=slot,
        patient=patient,
        place_kind=PlaceKind.DEDICATED_PLACE,
        accompanying=idel,
        now=NOW,
    )


def shared_holds(session, slot) -> list[Allocation]:
    return list(session.scalars(select(Allocation).where(Allocation.slot_id == slot.id)))


@pytest.fixture
def group(db_session, territory):
    t = territory
    kit = factories.resource(db_session, t.cpts)
    program = group_program(db_session, t.cpts, capacity=3, performer=t.cardiologist, kit_id=kit.id)
    slot = factories.slot(db_session, program, START)
    patients = [factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator) for _ in range(4)]
    return t, program, slot, patients, kit


def test_participants_share_the_performer_and_kit_held_once_for_the_slot(db_session, group):
    t, _program, slot, patients, kit = group
    first, second = (book(db_session, t.coordinator, slot, p) for p in patients[:2])
    held = {(a.resource_kind, a.resource_id) for a in shared_holds(db_session, slot)}
    assert held == {(AllocationResource.PROFESSIONAL, t.cardiologist.id), (AllocationResource.KIT, kit.id)}
    for appointment, patient in ((first, patients[0]), (second, patients[1])):
        own = {(a.resource_kind, a.resource_id) for a in appointment.allocations}
        assert own == {(AllocationResource.PATIENT, patient.id)}
        assert appointment.slot_id == slot.id


def test_a_full_session_refuses_the_next_participant(db_session, group):
    t, _program, slot, patients, _kit = group
    for patient in patients[:3]:
        book(db_session, t.coordinator, slot, patient)
    with pytest.raises(appointments.SessionFull, match="Séance complète : 3/3 participants"):
        book(db_session, t.coordinator, slot, patients[3])


def test_one_patient_cannot_take_two_seats(db_session, group):
    t, _program, slot, patients, _kit = group
    book(db_session, t.coordinator, slot, patients[0])
    with pytest.raises(BookingConflict, match="Le patient"):
        book(db_session, t.coordinator, slot, patients[0])


def test_the_shared_holds_go_with_the_last_participant_and_a_seat_freed_is_bookable(db_session, group):
    t, _program, slot, patients, _kit = group
    booked = [book(db_session, t.coordinator, slot, p) for p in patients[:3]]
    appointments.cancel(db_session, t.coordinator, booked[0], reason="Hospitalisé", now=NOW)
    assert len(shared_holds(db_session, slot)) == 2, "others remain: the session keeps its performer and kit"
    book(db_session, t.coordinator, slot, patients[3])  # the freed seat
    for appointment in [*booked[1:]]:
        appointments.cancel(db_session, t.coordinator, appointment, reason="Séance reportée", now=NOW)
    remaining = db_session.scalars(
        select(Appointment).where(Appointment.slot_id == slot.id, Appointment.state == "proposed")
    ).all()
    assert len(remaining) == 1
    appointments.cancel(db_session, t.coordinator, remaining[0], reason="Séance reportée", now=NOW)
    assert shared_holds(db_session, slot) == []


def test_the_group_session_holds_its_performer_against_another_program(db_session, group):
    t, _program, slot, patients, _kit = group
    book(db_session, t.coordinator, slot, patients[0])
    other = factories.program(db_session, t.cpts, performer=t.cardiologist)
    other_slot = factories.slot(db_session, other, START + dt.timedelta(minutes=5))
    with pytest.raises(BookingConflict, match="LEMAITRE"):
        book(db_session, t.coordinator, other_slot, patients[1])


def test_the_kit_lists_a_group_session_as_one_booking_through_its_first_participant(db_session, group):
    t, _program, slot, patients, kit = group
    first, second = (book(db_session, t.coordinator, slot, p) for p in patients[:2])
    listed, total = resources.bookings(db_session, kit)
    assert total == 1 and [b.appointment.id for b in listed] == [first.id]
    upcoming = resources.upcoming_bookings(db_session, [kit.id], now=NOW)[kit.id]
    assert upcoming.total == 1 and [b.appointment.id for b in upcoming.first] == [first.id]
    appointments.cancel(db_session, t.coordinator, first, reason="Hospitalisé", now=NOW)
    assert [b.appointment.id for b in resources.bookings(db_session, kit)[0]] == [second.id]


def test_a_single_seat_program_keeps_every_hold_on_its_appointment(db_session, territory, slot):
    appointment = book(db_session, territory.coordinator, slot, territory.patient)
    assert shared_holds(db_session, slot) == []
    kinds = sorted(a.resource_kind.value for a in appointment.allocations)
    assert kinds == ["patient", "professional", "professional"]


# --- under concurrency ------------------------------------------------------------------------------------


@pytest.fixture
def contested_group(committed):
    """A group session of six, and fifty patients each with their own IDEL."""
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        coordinator = factories.user(session, org, Role.COORDINATOR)
        program = group_program(session, org, capacity=6)
        slot = factories.slot(session, program, START)
        pairs = []
        for _ in range(50):
            patient = factories.consenting_patient(session, org, recorded_by=coordinator)
            idel = factories.professional(session, org, Profession.NURSE, accompanies_teleconsultation=True)
            pairs.append((patient.id, idel.id))
        session.commit()
        return factory, coordinator.id, slot.id, pairs


def attempt(factory, coordinator_id, slot_id, patient_id, idel_id, barrier, results):
    from hub.models import Patient, Professional, User

    barrier.wait()
    try:
        with factory() as session:
            book(
                session,
                session.get(User, coordinator_id),
                session.get(Slot, slot_id),
                session.get(Patient, patient_id),
                session.get(Professional, idel_id),
            )
            session.commit()
        results.append("booked")
    except appointments.SessionFull as exc:
        results.append(("full", exc.status, exc.title))
    except Exception as exc:  # reported, and fails the test below
        results.append(("error", repr(exc)))


@pytest.mark.concurrency
def test_fifty_simultaneous_bookings_into_a_session_of_six_book_exactly_six(contested_group):
    factory, coordinator_id, slot_id, pairs = contested_group
    barrier = threading.Barrier(len(pairs))
    results: list = []
    threads = [
        threading.Thread(target=attempt, args=(factory, coordinator_id, slot_id, p, i, barrier, results))
        for p, i in pairs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [r for r in results if r[0] != "full" and r != "booked"] == []
    assert results.count("booked") == 6
    assert results.count(("full", 409, "Séance complète")) == 44
    with factory() as session:
        booked = session.scalars(select(Appointment).where(Appointment.slot_id == slot_id)).all()
        assert len(booked) == 6
        shared = session.scalar(select(func.count()).select_from(Allocation).where(Allocation.slot_id == slot_id))
        assert shared == 1, "the performer, held once for the session"
        own = session.scalar(
            select(func.count()).select_from(Allocation).where(Allocation.appointment_id.in_([a.id for a in booked]))
        )
        assert own == 12, "each participant: their patient hold and their IDEL's"


@pytest.mark.concurrency
def test_the_last_participant_leaving_while_another_joins_leaves_the_session_held_once(committed):
    """One cancels the session's only seat while another books a seat, at once: whatever the order, the session
    ends with one participant and its performer held once (never released under the newcomer's feet)."""
    from hub.models import Patient, User

    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        coordinator = factories.user(session, org, Role.COORDINATOR)
        program = group_program(session, org, capacity=6)
        runs = []
        for week in range(8):
            slot = factories.slot(session, program, START + dt.timedelta(weeks=week))
            leaving, joining = (factories.consenting_patient(session, org, recorded_by=coordinator) for _ in range(2))
            appointment = book(session, coordinator, slot, leaving)
            runs.append((slot.id, appointment.id, joining.id))
        session.commit()

    def cancel(appointment_id, barrier, errors):
        barrier.wait()
        try:
            with factory() as session:
                appointments.cancel(
                    session, session.get(User, coordinator.id), session.get(Appointment, appointment_id), reason="x"
                )
                session.commit()
        except Exception as exc:  # reported, and fails the test below
            errors.append(repr(exc))

    def join(slot_id, patient_id, barrier, errors):
        barrier.wait()
        try:
            with factory() as session:
                book(
                    session,
                    session.get(User, coordinator.id),
                    session.get(Slot, slot_id),
                    session.get(Patient, patient_id),
                )
                session.commit()
        except Exception as exc:  # reported, and fails the test below
            errors.append(repr(exc))

    errors: list = []
    for slot_id, appointment_id, patient_id in runs:
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=cancel, args=(appointment_id, barrier, errors)),
            threading.Thread(target=join, args=(slot_id, patient_id, barrier, errors)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    with factory() as session:
        for slot_id, _appointment, _patient in runs:
            shared = session.scalar(select(func.count()).select_from(Allocation).where(Allocation.slot_id == slot_id))
            seated = appointments.participants_count(session, [slot_id]).get(slot_id, 0)
            assert (seated, shared) == (1, 1)


def test_a_group_slot_with_seats_left_is_still_offered_and_counted_free_once(db_session, group):
    """The desk's coming sessions and a referral's candidate slots: a group session's slot stays free until full;
    a single seat is taken by its one booking, as before."""
    t, program, slot, patients, _kit = group
    single = factories.slot(db_session, t.program, START + dt.timedelta(hours=2))
    book(db_session, t.coordinator, single, t.patient)
    book(db_session, t.coordinator, slot, patients[0])
    gp_user = factories.user(
        db_session,
        t.cpts,
        Role.PROFESSIONAL,
        professional_row=factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER),
    )
    referral = factories.referral(db_session, patients[3], author=gp_user, target_specialist_id=t.cardiologist.id)

    def free():
        loads = desk.coming_sessions(db_session, t.cpts.id, zone="Europe/Paris", now=NOW)
        return {load.program_id: (load.slots, load.free) for load in loads}

    def offered():
        return {s.id for s in referrals.free_slots_for(db_session, [referral], now=NOW)[referral.id]}

    assert free() == {program.id: (1, 1), t.program.id: (1, 0)}
    assert offered() == {slot.id}
    for patient in patients[1:3]:
        book(db_session, t.coordinator, slot, patient)
    assert free()[program.id] == (1, 0) and offered() == set()


@pytest.mark.usefixtures("clock")
def test_a_seat_freed_in_a_full_group_session_is_offered_to_a_waiting_patient(db_session, group):
    """Issue 16, items 1 and 2 together: one participant cancelling frees a seat (not the slot, which the others
    still hold): the coordinator gets the task, and the offer books the waiting patient into the freed seat."""
    t, program, slot, patients, _kit = group
    waiter = patients[3]
    entry = waiting.add(db_session, t.coordinator, patient=waiter, program=program, urgency=WaitingUrgency.URGENT)
    booked = [book(db_session, t.coordinator, slot, p) for p in patients[:3]]
    tasks = select(FreedSlotTask).where(FreedSlotTask.resolved_at.is_(None))
    assert db_session.scalars(tasks).all() == [], "a full session frees nothing"
    appointments.cancel(db_session, t.coordinator, booked[1], reason="Hospitalisé", now=NOW)
    [task] = db_session.scalars(tasks).all()
    assert task.slot_id == slot.id
    offered = waiting.offer(db_session, t.coordinator, task, entry, upload_dir=Path("/nonexistent-uploads"))
    assert (offered.patient_id, offered.slot_id) == (waiter.id, slot.id)
    assert len(shared_holds(db_session, slot)) == 2, "the performer and kit stay held once"


@pytest.mark.usefixtures("clock")
def test_each_seat_freed_in_a_group_session_is_offered_in_turn(db_session, group):
    """One open task per slot at a time: once a freed seat is offered, the next freed seat is the next task."""
    t, program, slot, patients, _kit = group
    waiters = [factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator) for _ in range(2)]
    entries = [
        waiting.add(db_session, t.coordinator, patient=w, program=program, urgency=WaitingUrgency.URGENT)
        for w in waiters
    ]
    booked = [book(db_session, t.coordinator, slot, p) for p in patients[:3]]
    for appointment in booked[:2]:
        appointments.cancel(db_session, t.coordinator, appointment, reason="Hospitalisé", now=NOW)
    for entry in entries:
        [view] = waiting.open_tasks(db_session, t.cpts.id, now=NOW)
        waiting.offer(db_session, t.coordinator, view.task, entry, upload_dir=Path("/nonexistent-uploads"))
    assert waiting.open_tasks(db_session, t.cpts.id, now=NOW) == [], "the session is full again"
    assert {e.state for e in entries} == {WaitingState.BOOKED}


@pytest.mark.usefixtures("clock")
def test_a_freed_seat_taken_another_way_leaves_the_desk(db_session, group):
    t, program, slot, patients, _kit = group
    waiter = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
    waiting.add(db_session, t.coordinator, patient=waiter, program=program, urgency=WaitingUrgency.URGENT)
    booked = [book(db_session, t.coordinator, slot, p) for p in patients[:3]]
    appointments.cancel(db_session, t.coordinator, booked[0], reason="Hospitalisé", now=NOW)
    assert len(waiting.open_tasks(db_session, t.cpts.id, now=NOW)) == 1
    book(db_session, t.coordinator, slot, patients[3])  # a direct booking takes the seat
    assert waiting.open_tasks(db_session, t.cpts.id, now=NOW) == []
    assert waiting.open_task_count(db_session, t.cpts.id, now=NOW) == 0


@pytest.mark.usefixtures("clock")
def test_the_performer_absent_postpones_every_participant_of_the_group_session(db_session, group):
    """Issue 16, items 2 and 3: the performer's absence, recorded on one participant, is the session's: every
    participant still to be seen is postponed and listed « À reprogrammer »."""
    t, _program, slot, patients, _kit = group
    booked = [book(db_session, t.coordinator, slot, p) for p in patients[:3]]
    for appointment in booked:
        appointment.state = AppointmentState.CONFIRMED  # their IDELs confirmed
    db_session.flush()
    first = booked[0]
    attendance.record(
        db_session,
        t.coordinator,
        first,
        patient=True,
        accompanying=None if first.accompanying_id is None else True,
        performer=False,
        now=START + dt.timedelta(minutes=5),
    )
    assert {a.state for a in booked} == {AppointmentState.POSTPONED}
    listed = attendance.to_reschedule(db_session, t.cpts.id, now=NOW)
    assert {item.appointment.id for item in listed} == {a.id for a in booked}
    assert {item.why for item in listed} == {attendance.PERFORMER_ABSENT}
    assert attendance.count_to_reschedule(db_session, t.cpts.id) == 3
