"""Slots of a session program over a rolling horizon, generated idempotently."""

import datetime as dt
import json
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import String, delete, func, select, type_coerce
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
    starts, shape = _expansion(program, window_start, window_end)
    return [(o, position, o + offset, o + end_offset) for o in starts for position, offset, end_offset in shape]


def _expansion(program: SessionProgram, window_start: dt.datetime, window_end: dt.datetime):
    """The UTC starts of the program's occurrences in the window, and the shape of an occurrence: (position,
    offset of its start, offset of its end) of each slot, read once (a year of a program is 700 slots)."""
    zone = ZoneInfo(program.zone)
    local_from = dt.datetime.combine(program.valid_from, dt.time(), tzinfo=zone)
    start = max(window_start, local_from)
    end = window_end
    if program.valid_until is not None:
        end = min(end, dt.datetime.combine(program.valid_until + dt.timedelta(days=1), dt.time(), tzinfo=zone))
    if start >= end:
        return [], []
    length = dt.timedelta(minutes=program.slot_minutes)
    offsets = [program.slot_start_offset(position) for position in range(program.slot_count)]
    shape = [(position, offset, offset + length) for position, offset in enumerate(offsets)]
    starts = [
        o.start.astimezone(dt.UTC) for o in occurrences(recurrence_of(program), window_start=start, window_end=end)
    ]
    return starts, shape


def generate_slots(session: Session, program: SessionProgram, *, now: dt.datetime) -> GenerationReport:
    """Make the program's future slots match its rule over its horizon.

    Idempotent: a second run creates nothing. Free future slots that the rule no longer produces are
    removed; booked ones are kept and reported, for the coordinator to move. Slots changed by hand
    (exceptions) and cancelled occurrences are left as they are.

    A year of slots for a hundred programs is 15,000 rows (P5), so the slots are compared and written as the
    driver's values, with no Slot object and no per-value type processing: one light query of the program's
    future slots, one executemany (SQLite) or COPY (PostgreSQL) of the missing ones.
    """
    report = GenerationReport()
    if not program.is_active:
        return report
    session.flush()  # what autoflush would do: the statements below go to the connection, past the ORM
    connection = session.connection()
    sqlite = connection.dialect.name == "sqlite"
    wanted = _wanted_rows(program, now, now + dt.timedelta(weeks=program.horizon_weeks), sqlite=sqlite)
    existing = connection.execute(
        select(Slot.id, type_coerce(Slot.starts_at, String), Slot.is_exception, type_coerce(Slot.state, String)).where(
            Slot.program_id == program.id, Slot.starts_at >= now
        )
    ).all()
    have = {start for _id, start, _exception, _state in existing}
    missing = [row for key, row in wanted.items() if key not in have]
    if missing:
        _insert(connection, missing, sqlite=sqlite)
        report.created = len(missing)
        report.created_starts = [_from_sqlite(row[3]) if sqlite else row[3] for row in missing]
    unwanted = [
        (slot_id, state) for slot_id, start, exception, state in existing if start not in wanted and not exception
    ]
    if unwanted:
        booked = booked_slot_ids(session, [slot_id for slot_id, _state in unwanted])
        removable = [slot_id for slot_id, state in unwanted if slot_id not in booked and state == _OPEN]
        kept = sorted(slot_id for slot_id, _state in unwanted if slot_id in booked)
        report.booked_no_longer_fitting = (
            list(session.scalars(select(Slot).where(Slot.id.in_(kept)).order_by(Slot.starts_at))) if kept else []
        )
        if removable:
            session.execute(delete(Slot).where(Slot.id.in_(removable)))
            report.removed = len(removable)
    return report


def _wanted_rows(program: SessionProgram, window_start: dt.datetime, window_end: dt.datetime, *, sqlite: bool):
    """The rows of `wanted_slot_times` as the driver takes them (the columns of `_COLUMNS`), by their start as the
    driver gives it back: what UTCDateTime stores, SQLite's naive UTC text or PostgreSQL's aware datetime
    (tests/scheduling/test_slots.py compares them with what the ORM stores). On SQLite the times are formatted
    from naive UTC values here, once each, rather than by the column type's two processing steps."""
    starts, shape = _expansion(program, window_start, window_end)
    program_id, rows = program.id, {}
    if sqlite:
        for occurrence in starts:
            base = occurrence.replace(tzinfo=None)
            occurrence_text = base.isoformat(*_SQLITE_FORMAT)
            for position, offset, end_offset in shape:
                start = (base + offset).isoformat(*_SQLITE_FORMAT)
                end = (base + end_offset).isoformat(*_SQLITE_FORMAT)
                rows[start] = (program_id, occurrence_text, position, start, end, _OPEN, False)
    else:
        for occurrence in starts:
            for position, offset, end_offset in shape:
                start = occurrence + offset
                rows[start] = (program_id, occurrence, position, start, occurrence + end_offset, _OPEN, False)
    return rows


_OPEN = SlotState.OPEN.value
_COLUMNS = ("program_id", "occurrence_start", "position", "starts_at", "ends_at", "state", "is_exception")


def _insert(connection, rows: list[tuple], *, sqlite: bool) -> None:
    """The rows in `_COLUMNS` order: on SQLite one executemany; on PostgreSQL one COPY (psycopg's executemany
    sends a statement per row, SQLAlchemy's batched VALUES make psycopg parse long statements in Python)."""
    if sqlite:
        markers = ", ".join("?" * len(_COLUMNS))
        connection.exec_driver_sql(f"INSERT INTO slots ({', '.join(_COLUMNS)}) VALUES ({markers})", rows)  # noqa: S608
        return
    with (
        connection.connection.driver_connection.cursor() as cursor,
        cursor.copy(f"COPY slots ({', '.join(_COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


# SQLAlchemy's storage format of a datetime on SQLite (naive UTC for UTCDateTime): microseconds always.
_SQLITE_FORMAT = (" ", "microseconds")


def _from_sqlite(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


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
    """The slot with its program, and the program's room and kit, in one query: booking reads them all (no lazy
    load on the booking path: the room and kit must not be retired)."""
    return session.get(Slot, slot_id, options=_WITH_PROGRAM)


_PROGRAM = joinedload(Slot.program)
_WITH_PROGRAM = [_PROGRAM.joinedload(SessionProgram.room), _PROGRAM.joinedload(SessionProgram.kit)]  # built once
