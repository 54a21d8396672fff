"""Allocations: resources held over half-open time ranges, never two overlapping for one resource.

All the holds of an appointment are inserted together or not at all. The check below gives a clear
answer in the common case; the guarantee under concurrency comes from the database: PostgreSQL's
exclusion constraint (a concurrent overlapping insert waits, then fails), and on SQLite the
transaction's BEGIN IMMEDIATE, which serialises writers so that the check and the insert are atomic.
"""

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, literal_column, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnClause

from hub.errors import Conflict
from hub.formatting import french_datetime
from hub.models import Allocation, AllocationResource, Appointment, Slot

EXCLUSION_VIOLATION = "23P01"
DEADLOCK_DETECTED = "40P01"
DEADLOCK_ATTEMPTS = 3  # a deadlock aborts one of two bookings; the next attempt waits behind the other


@dataclass(frozen=True)
class Hold:
    resource_kind: AllocationResource
    resource_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    label: str  # how the conflict message names the resource: "Dr Anne-Iris LEMAITRE", "la mallette ECG"

    def overlaps(self, starts_at: dt.datetime, ends_at: dt.datetime) -> bool:
        return self.starts_at < ends_at and starts_at < self.ends_at


class BookingConflict(Conflict):
    title = "Créneau déjà pris"
    type_slug = "booking-conflict"

    def __init__(self, hold: Hold, *, zone: str):
        super().__init__(
            f"{hold.label} est déjà réservé(e) sur ce créneau ({french_datetime(hold.starts_at, zone)} – "
            f"{french_datetime(hold.ends_at, zone).split(', ')[-1]}).",
            resource={"kind": hold.resource_kind.value, "id": hold.resource_id, "label": hold.label},
            starts_at=hold.starts_at.isoformat(),
            ends_at=hold.ends_at.isoformat(),
        )
        self.hold = hold


def find_conflict(session: Session, holds: list[Hold], *, ignore_appointment_id: int | None = None) -> Hold | None:
    """The first hold that overlaps an existing allocation of the same resource, in one query."""
    taken = find_conflicts(session, holds, ignore_appointment_id=ignore_appointment_id)
    return taken[0] if taken else None


def find_conflicts(session: Session, holds: list[Hold], *, ignore_appointment_id: int | None = None) -> list[Hold]:
    """Every hold that overlaps an existing allocation of the same resource, in the holds' order, in one query
    whatever their number (a whole series is checked at once)."""
    if not holds:
        return []
    overlaps = _range_overlap if session.get_bind().dialect.name == "postgresql" else _bounds_overlap
    query = select(Allocation.resource_kind, Allocation.resource_id, Allocation.starts_at, Allocation.ends_at).where(
        or_(
            *(
                (Allocation.resource_kind == h.resource_kind) & (Allocation.resource_id == h.resource_id) & overlaps(h)
                for h in holds
            )
        )
    )
    if ignore_appointment_id is not None:
        # A group session's shared holds belong to no appointment: NULL would drop them from a plain `!=`.
        query = query.where(
            or_(Allocation.appointment_id.is_(None), Allocation.appointment_id != ignore_appointment_id)
        )
    rows = session.execute(query).all()
    return [
        hold
        for hold in holds
        if any(
            (hold.resource_kind, hold.resource_id) == (row.resource_kind, row.resource_id)
            and hold.overlaps(row.starts_at, row.ends_at)
            for row in rows
        )
    ]


def _bounds_overlap(hold: Hold):
    return (Allocation.starts_at < hold.ends_at) & (Allocation.ends_at > hold.starts_at)


def _range_overlap(hold: Hold):
    # Written as the exclusion constraint's own expression, so that its GiST index answers: comparing the
    # bounds alone walks the resource's whole history through the b-tree.
    half_open: ColumnClause[str] = literal_column("'[)'")
    stored = func.tstzrange(Allocation.starts_at, Allocation.ends_at, half_open)
    return stored.op("&&")(func.tstzrange(hold.starts_at, hold.ends_at, half_open))


def allocate(session: Session, appointment: Appointment, holds: list[Hold], *, zone: str) -> list[Allocation]:
    """Hold every resource for the appointment, or raise BookingConflict naming the first one taken.

    The appointment must have been flushed (it needs its id). Must run inside the caller's transaction;
    on a conflict nothing of the appointment's holds remains once the caller rolls back. Holds of one
    appointment may not overlap each other for one resource.
    """
    _refuse_self_overlap(holds, zone=zone)
    taken = find_conflict(session, holds, ignore_appointment_id=appointment.id)
    if taken is not None:
        raise BookingConflict(taken, zone=zone)
    rows = [Allocation(appointment_id=appointment.id, **_range_of(h)) for h in holds]
    _insert(session, rows, holds, zone=zone)
    session.expire(appointment, ["allocations"])
    return rows


def allocate_shared(session: Session, slot: Slot, holds: list[Hold], *, zone: str) -> list[Allocation]:
    """Hold a group session's shared resources (performer, room, kit) once, owned by its slot, or raise
    BookingConflict naming the first one taken. The caller holds the slot's lock (see workflows.appointments)."""
    _refuse_self_overlap(holds, zone=zone)
    taken = find_conflict(session, holds)
    if taken is not None:
        raise BookingConflict(taken, zone=zone)
    rows = [Allocation(slot_id=slot.id, **_range_of(h)) for h in holds]
    _insert(session, rows, holds, zone=zone)
    return rows


def release_shared(session: Session, slot: Slot) -> None:
    """Give back a group session's shared holds: its last participant has gone."""
    session.execute(delete(Allocation).where(Allocation.slot_id == slot.id))


def _range_of(hold: Hold) -> dict:
    return {
        "resource_kind": hold.resource_kind,
        "resource_id": hold.resource_id,
        "starts_at": hold.starts_at,
        "ends_at": hold.ends_at,
    }


def _insert(session: Session, rows: list[Allocation], holds: list[Hold], *, zone: str) -> None:
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        try:
            # Added inside the savepoint: begin_nested() flushes what is pending before it starts.
            with session.begin_nested():
                session.add_all(rows)
                session.flush()
            break
        except IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) != EXCLUSION_VIOLATION:
                raise
            # A concurrent booking won the race after our check: name what it took.
            raise BookingConflict(find_conflict(session, holds) or holds[0], zone=zone) from exc
        except OperationalError as exc:
            # Two bookings inserting conflicting holds at once may each wait for the other's row while PostgreSQL
            # checks the exclusion constraint: it aborts one of them. Our savepoint rolled back, so inserting again
            # waits for the other booking alone, then holds or meets its committed row (the violation above).
            if getattr(exc.orig, "sqlstate", None) != DEADLOCK_DETECTED or attempt == DEADLOCK_ATTEMPTS:
                raise


def release(session: Session, appointment: Appointment, *, kinds: set[AllocationResource] | None = None) -> None:
    """Give back the appointment's holds (all, or those of some resource kinds)."""
    for allocation in list(appointment.allocations):
        if kinds is None or allocation.resource_kind in kinds:
            appointment.allocations.remove(allocation)
            session.delete(allocation)


def _refuse_self_overlap(holds: list[Hold], *, zone: str) -> None:
    for i, first in enumerate(holds):
        for second in holds[i + 1 :]:
            same = (first.resource_kind, first.resource_id) == (second.resource_kind, second.resource_id)
            if same and first.overlaps(second.starts_at, second.ends_at):
                raise BookingConflict(second, zone=zone)
