"""Slots of a session program over a rolling horizon, generated idempotently."""

import datetime as dt
import json
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, joinedload

from hub.models import Appointment, AppointmentState, SessionProgram, Slot, SlotState
from scheduling.recurrence import Recurrence, occurrences

# An appointment in one of these states holds its slot.
HOLDING_STATES = frozenset(
    {
        AppointmentState.PROPOSED,
        AppointmentState.CONFIRMED,
        AppointmentState.CHECKED_IN,
        AppointmentState.DONE,
        AppointmentState.DECLINED,
        AppointmentState.NO_SHOW,
        AppointmentState.DEGRADED,
        AppointmentState.POSTPONED,  # past: booking again takes another slot
    }
)


@dataclass
class GenerationReport:
    created: int = 0
    removed: int = 0
    created_starts: list[dt.datetime] = field(default_factory=list)  # for the waiting list's tasks
    booked_no_longer_fitting: list[Slot] = field(default_factory=list)


def recurrence_of(program: SessionProgram) -> Recurrence:
    return Recurrence(
        rrule=program.rrule,
        start=program.start_local,
        zone=program.zone,
        exdates=tuple(dt.datetime.fromisoformat(value) for value in json.loads(program.exdates or "[]")),
        skip_public_holidays=program.skip_public_holidays,
        closed_periods=tuple((c.first_day, c.last_day) for c in program.closures),
    )


def wanted_slot_times(program: SessionProgram, window_start: dt.datetime, window_end: dt.datetime):
    """(occurrence start, position, slot start, slot end) for each slot the program should have."""
    zone = ZoneInfo(program.zone)
    local_from = dt.datetime.combine(program.valid_from, dt.time(), tzinfo=zone)
    start = max(window_start, local_from)
    end = window_end
    if program.valid_until is not None:
        end = min(end, dt.datetime.combine(program.valid_until + dt.timedelta(days=1), dt.time(), tzinfo=zone))
    if start >= end:
        return []
    length = dt.timedelta(minutes=program.slot_minutes)
    result = []
    for occurrence in occurrences(recurrence_of(program), window_start=start, window_end=end):
        for position in range(program.slot_count):
            slot_start = occurrence.start + program.slot_start_offset(position)
            result.append((occurrence.start, position, slot_start, slot_start + length))
    return result


def generate_slots(session: Session, program: SessionProgram, *, now: dt.datetime) -> GenerationReport:
    """Make the program's future slots match its rule over its horizon.

    Idempotent: a second run creates nothing. Free future slots that the rule no longer produces are
    removed; booked ones are kept and reported, for the coordinator to move. Slots changed by hand
    (exceptions) and cancelled occurrences are left as they are.
    """
    report = GenerationReport()
    if not program.is_active:
        return report
    horizon_end = now + dt.timedelta(weeks=program.horizon_weeks)
    wanted = {start: (occ, pos, end) for occ, pos, start, end in wanted_slot_times(program, now, horizon_end)}
    existing = {
        slot.starts_at: slot
        for slot in session.scalars(select(Slot).where(Slot.program_id == program.id, Slot.starts_at >= now))
    }
    missing = [
        {
            "program_id": program.id,
            "occurrence_start": occurrence,
            "position": position,
            "starts_at": start,
            "ends_at": end,
        }
        for start, (occurrence, position, end) in wanted.items()
        if start not in existing
    ]
    if missing:
        # One bulk INSERT: building a Slot object per row costs more than the expansion itself (P5).
        session.execute(insert(Slot), missing)
        report.created = len(missing)
        report.created_starts = [row["starts_at"] for row in missing]
    unwanted = [slot for start, slot in existing.items() if start not in wanted and not slot.is_exception]
    booked = booked_slot_ids(session, [slot.id for slot in unwanted])
    removable = [slot.id for slot in unwanted if slot.id not in booked and slot.state is SlotState.OPEN]
    report.booked_no_longer_fitting = [slot for slot in unwanted if slot.id in booked]
    if removable:
        session.execute(delete(Slot).where(Slot.id.in_(removable)))
        report.removed = len(removable)
    session.flush()
    return report


def has_seat_left():
    """A condition on a slot, its program joined: it still takes a participant (fewer appointments hold it than its
    program's capacity: none for a single seat)."""
    taken = (
        select(func.count(Appointment.id))
        .where(Appointment.slot_id == Slot.id, Appointment.state.in_(HOLDING_STATES))
        .correlate(Slot)
        .scalar_subquery()
    )
    return taken < SessionProgram.capacity


def booked_slot_ids(session: Session, slot_ids: list[int]) -> set[int]:
    if not slot_ids:
        return set()
    return set(
        session.scalars(
            select(Appointment.slot_id).where(Appointment.slot_id.in_(slot_ids), Appointment.state.in_(HOLDING_STATES))
        )
    )


def slot_with_program(session: Session, slot_id: int) -> Slot | None:
    """The slot with its program in one query: booking reads both (no lazy load on the booking path)."""
    return session.get(Slot, slot_id, options=[joinedload(Slot.program)])
