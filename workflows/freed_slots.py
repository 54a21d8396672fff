"""What the waiting list learns from the bookings, in their own transaction (so that nothing is lost and nothing
stays of a rolled-back change). A slot of a program with waiting patients becomes free — a cancellation, new
dates —: the coordinator gets a task to offer it (workflows.waiting offers it). A waiting patient is booked into
the program — by the offer, a referral scheduled, any booking —: their entry is booked; their referral is
cancelled: their entry is withdrawn. Imports no workflow: workflows.appointments (book, cancel),
workflows.referrals (cancel), workflows.programs and the slot horizon job call it."""

import datetime as dt

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from hub import audit
from hub.models import (
    Actor,
    Appointment,
    FreedSlotOutcome,
    FreedSlotReason,
    FreedSlotTask,
    SessionProgram,
    Slot,
    SlotState,
    WaitingEntry,
    WaitingState,
)
from scheduling import slots
from scheduling.slots import GenerationReport, has_seat_left


def slot_freed(
    session: Session,
    slot: Slot,
    *,
    reason: FreedSlotReason,
    now: dt.datetime,
    cancelled_appointment_id: int | None = None,
) -> FreedSlotTask | None:
    """The task for a slot that is free again, when someone waits for its program; None when the slot is not to
    be offered (past, cancelled, still held, nobody waiting) or already has its open task."""
    program = slot.program
    if slot.state is not SlotState.OPEN or slot.starts_at <= now or not program.is_active:
        return None
    if not _has_waiting(session, program.id) or _is_held(session, slot.id) or _open_task(session, slot.id):
        return None
    task = FreedSlotTask(
        cpts_id=program.cpts_id, slot_id=slot.id, reason=reason, cancelled_appointment_id=cancelled_appointment_id
    )
    try:
        # The partial unique index keeps one open task per slot, also when two cancellations of one slot's
        # appointments commit at once: the second one keeps the first one's task.
        with session.begin_nested():
            session.add(task)
    except IntegrityError:
        return None
    return task


def patient_booked(
    session: Session, actor: Actor, appointment: Appointment, *, now: dt.datetime, waiting: bool = True
) -> None:
    """The patient's waiting entry for the appointment's program, if any, is booked with it — unless a concurrent
    booking took it first: the conditional update then finds it booked and leaves it (workflows.waiting.offer
    checks whose booking it is). `waiting` False: the caller read, in this transaction (is_waiting), that the
    patient has no waiting entry for the program, and the UPDATE that would change nothing is not sent."""
    if appointment.program_id is None or not waiting:
        return
    booked = session.scalars(
        update(WaitingEntry)
        .where(_waiting(appointment.patient_id, appointment.program_id))
        .values(state=WaitingState.BOOKED, appointment_id=appointment.id, resolved_at=now, resolved_by_user_id=actor.id)
        .returning(WaitingEntry.id)
        .execution_options(synchronize_session=False)
    ).all()
    for entry_id in booked:
        _expire(session, entry_id)
        audit.record(
            session,
            actor=actor,
            action="waiting.booked",
            target=("waiting_entries", entry_id),
            cpts_id=appointment.cpts_id,
            details={"appointment_id": appointment.id},
        )


def is_waiting(patient_id, program_id):
    """Whether the patient waits for the program, as a column (a booking reads it with its rules' facts)."""
    return exists().where(_waiting(patient_id, program_id))


def _waiting(patient_id, program_id):
    return (
        (WaitingEntry.patient_id == patient_id)
        & (WaitingEntry.program_id == program_id)
        & (WaitingEntry.state == WaitingState.WAITING)
    )


REFERRAL_CANCELLED = "Adressage annulé"


def referral_cancelled(session: Session, actor: Actor, referral_id: int, *, now: dt.datetime) -> None:
    """A cancelled referral no longer waits: its entry is withdrawn (never offered a slot the GP no longer asks)."""
    withdrawn = session.execute(
        update(WaitingEntry)
        .where(WaitingEntry.referral_id == referral_id, WaitingEntry.state == WaitingState.WAITING)
        .values(
            state=WaitingState.WITHDRAWN,
            withdraw_reason=REFERRAL_CANCELLED,
            resolved_at=now,
            resolved_by_user_id=actor.id,
        )
        .returning(WaitingEntry.id, WaitingEntry.cpts_id)
        .execution_options(synchronize_session=False)
    ).all()
    for entry_id, cpts_id in withdrawn:
        _expire(session, entry_id)
        audit.record(
            session, actor=actor, action="waiting.withdraw", target=("waiting_entries", entry_id), cpts_id=cpts_id
        )


def _expire(session: Session, entry_id: int) -> None:
    """An entry changed by an UPDATE statement is read again when next used."""
    if (loaded := session.identity_map.get(identity_key(WaitingEntry, entry_id))) is not None:
        session.expire(loaded)


def generate_slots(session: Session, program: SessionProgram, *, now: dt.datetime) -> GenerationReport:
    """scheduling.slots.generate_slots, and a task for each slot the program's new dates opened when patients
    wait for it: what every workflow that makes slots calls."""
    report = slots.generate_slots(session, program, now=now)
    starts = report.created_starts
    if starts and _has_waiting(session, program.id):
        created = select(Slot).where(Slot.program_id == program.id, Slot.starts_at.in_(starts))
        for slot in session.scalars(created.order_by(Slot.starts_at)):
            slot_freed(session, slot, reason=FreedSlotReason.NEW_DATES, now=now)
    return report


def slots_gone(session: Session, slot_ids: list[int], *, now: dt.datetime) -> None:
    """Slots cancelled with their occurrence or series: their open tasks close, nothing is to be offered."""
    if slot_ids:
        session.execute(
            update(FreedSlotTask)
            .where(FreedSlotTask.slot_id.in_(slot_ids), FreedSlotTask.resolved_at.is_(None))
            .values(resolved_at=now, outcome=FreedSlotOutcome.GONE)
            .execution_options(synchronize_session=False)
        )


def _has_waiting(session: Session, program_id: int) -> bool:
    waiting = (WaitingEntry.program_id == program_id) & (WaitingEntry.state == WaitingState.WAITING)
    return bool(session.scalar(select(exists().where(waiting))))


def _is_held(session: Session, slot_id: int) -> bool:
    """No seat left: a single-seat slot another appointment holds, or a full group session."""
    seat = (
        select(Slot.id)
        .join(SessionProgram, SessionProgram.id == Slot.program_id)
        .where(Slot.id == slot_id, has_seat_left())
    )
    return session.scalar(seat) is None


def _open_task(session: Session, slot_id: int) -> bool:
    open_ = (FreedSlotTask.slot_id == slot_id) & FreedSlotTask.resolved_at.is_(None)
    return bool(session.scalar(select(exists().where(open_))))
