"""Offering freed slots under concurrency, on the real databases: two coordinators offering one slot at once, or
one waiting patient two slots at once — one wins, the other gets a 409, nothing is booked twice."""

import datetime as dt
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.errors import Conflict
from hub.models import (
    Appointment,
    FreedSlotReason,
    FreedSlotTask,
    Role,
    Slot,
    User,
    WaitingEntry,
    WaitingState,
    WaitingUrgency,
)
from tests import factories
from tests.factories import MONDAY_14H, NOW
from workflows import freed_slots, waiting

pytestmark = pytest.mark.concurrency
UPLOADS = Path("/nonexistent-uploads")  # no referral here: nothing is written there


@pytest.fixture
def freed(committed):
    """Two freed slots of one program (the next two Mondays at 14:00, so that one patient could hold both), two
    coordinators, two waiting patients."""
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        coordinators = [factories.user(session, org, Role.COORDINATOR) for _ in range(2)]
        program = factories.program(session, org)
        tasks = []
        for weeks in (0, 1):
            slot = factories.slot(session, program, (MONDAY_14H + dt.timedelta(weeks=weeks)).astimezone(dt.UTC))
            task = FreedSlotTask(cpts_id=org.id, slot_id=slot.id, reason=FreedSlotReason.CANCELLATION)
            session.add(task)
            tasks.append(task)
        entries = [
            waiting.add(
                session,
                coordinators[0],
                patient=factories.consenting_patient(session, org, recorded_by=coordinators[0]),
                program=program,
                urgency=WaitingUrgency.URGENT,
            )
            for _ in range(2)
        ]
        session.commit()
        return factory, [c.id for c in coordinators], [t.id for t in tasks], [e.id for e in entries], program.id


def offer_at_once(factory, attempts):
    """Each attempt (coordinator, task, entry) in its own thread and session, released together."""
    barrier = threading.Barrier(len(attempts))
    results: list = []

    def attempt(coordinator_id, task_id, entry_id):
        barrier.wait()
        try:
            with factory() as session:
                waiting.offer(
                    session,
                    session.get_one(User, coordinator_id),
                    session.get_one(FreedSlotTask, task_id),
                    session.get_one(WaitingEntry, entry_id),
                    upload_dir=UPLOADS,
                    now=NOW,
                )
                session.commit()
            results.append("booked")
        except Conflict as exc:
            results.append(("conflict", exc.status, exc.detail))
        except Exception as exc:  # reported, and fails the test
            results.append(("error", repr(exc)))

    threads = [threading.Thread(target=attempt, args=args) for args in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_two_coordinators_offering_one_slot_to_two_patients_one_wins(freed):
    factory, (first, second), (task, _other_task), (entry, other_entry), program_id = freed
    results = offer_at_once(factory, [(first, task, entry), (second, task, other_entry)])
    assert results.count("booked") == 1, results
    [refused] = [r for r in results if r != "booked"]
    assert refused[:2] == ("conflict", 409), results
    with factory() as session:
        booked = session.scalars(select(Appointment).where(Appointment.program_id == program_id)).all()
        assert len(booked) == 1
        entries = session.scalars(select(WaitingEntry).where(WaitingEntry.id.in_([entry, other_entry]))).all()
        [winner] = [e for e in entries if e.state is WaitingState.BOOKED]
        assert [e.state for e in entries if e is not winner] == [WaitingState.WAITING]
        assert (winner.appointment_id, winner.patient_id) == (booked[0].id, booked[0].patient_id)
        assert session.get_one(FreedSlotTask, task).entry_id == winner.id


def test_one_patient_offered_two_slots_at_once_is_booked_once(freed):
    factory, (first, second), (task, other_task), (entry, _other_entry), program_id = freed
    results = offer_at_once(factory, [(first, task, entry), (second, other_task, entry)])
    assert results.count("booked") == 1, results
    [refused] = [r for r in results if r != "booked"]
    assert refused == ("conflict", 409, waiting.ENTRY_TAKEN), results
    with factory() as session:
        booked = session.scalar(select(func.count(Appointment.id)).where(Appointment.program_id == program_id))
        assert booked == 1, "the patient holds one of the two slots, never both"
        still_open = session.scalar(
            select(func.count(FreedSlotTask.id)).where(
                FreedSlotTask.id.in_([task, other_task]), FreedSlotTask.resolved_at.is_(None)
            )
        )
        assert still_open == 1, "the losing offer left its slot to offer"


def test_two_transactions_freeing_one_slot_at_once_leave_one_task(committed):
    """Two cancellations of one slot's holders (a group session's seats, or a cancellation racing the horizon job's
    new dates) commit together: one open task, no error (the partial unique index, then the savepoint)."""
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        coordinator = factories.user(session, org, Role.COORDINATOR)
        program = factories.program(session, org)
        slot = factories.slot(session, program, MONDAY_14H.astimezone(dt.UTC))
        waiting.add(
            session,
            coordinator,
            patient=factories.consenting_patient(session, org, recorded_by=coordinator),
            program=program,
            urgency=WaitingUrgency.URGENT,
        )
        session.commit()
        slot_id = slot.id
    barrier = threading.Barrier(2)
    results: list = []

    def free():
        barrier.wait()
        try:
            with factory() as session:
                task = freed_slots.slot_freed(
                    session, session.get_one(Slot, slot_id), reason=FreedSlotReason.CANCELLATION, now=NOW
                )
                session.commit()
            results.append(task is not None)
        except Exception as exc:  # reported, and fails the test
            results.append(repr(exc))

    threads = [threading.Thread(target=free) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results, key=str) == [False, True], results
    with factory() as session:
        tasks = session.scalar(select(func.count(FreedSlotTask.id)).where(FreedSlotTask.slot_id == slot_id))
        assert tasks == 1
