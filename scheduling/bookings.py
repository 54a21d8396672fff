"""Allocations: resources held over half-open time ranges, never two overlapping for one resource.

All the holds of an appointment are inserted together, in one statement, or not at all. On PostgreSQL the
exclusion constraint is the check: the insert skips (ON CONFLICT DO NOTHING) the holds it refuses, after waiting
for a concurrent booking of the same resource to commit or roll back, and what it did not insert names the
conflict; no SELECT comes first. On SQLite the transaction's BEGIN IMMEDIATE serialises writers, so a check
followed by the insert is atomic there.
"""

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import (
    DateTime,
    Numeric,
    Table,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnClause

from hub.db import around_new_id, values_around_id, with_defaults
from hub.errors import Conflict
from hub.formatting import french_datetime
from hub.models import Allocation, AllocationResource, Appointment, Professional, Slot

# How a conflict names a resource other than a professional (whose name is read only when one conflicts).
GENERIC_LABELS = {
    AllocationResource.PATIENT: "Le patient",
    AllocationResource.ROOM: "La salle",
    AllocationResource.KIT: "Le matériel",
}


@dataclass(frozen=True)
class Hold:
    resource_kind: AllocationResource
    resource_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    # How the conflict message names the resource ("Dr Anne-Iris LEMAITRE", "Le matériel"); None: looked up when
    # a conflict needs it (label_of), so that a booking that succeeds never reads it.
    label: str | None = None

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


def label_of(session: Session, hold: Hold) -> str:
    """How messages name the hold's resource: its label, else the professional's name or the kind's word."""
    if hold.label is not None:
        return hold.label
    if hold.resource_kind is AllocationResource.PROFESSIONAL:
        return session.get_one(Professional, hold.resource_id).full_name
    return GENERIC_LABELS[hold.resource_kind]


def conflict(session: Session, hold: Hold, *, zone: str) -> BookingConflict:
    """The 409 naming the hold's resource."""
    return BookingConflict(replace(hold, label=label_of(session, hold)), zone=zone)


def allocate(session: Session, appointment: Appointment, holds: list[Hold], *, zone: str) -> None:
    """Hold every resource for the appointment, or raise BookingConflict naming the first one taken.

    The appointment must have been flushed (it needs its id). Must run inside the caller's transaction; on a
    conflict none of these holds remains. Holds of one appointment may not overlap each other for one resource.
    """
    _hold(session, holds, {"appointment_id": appointment.id}, zone=zone, ignore_appointment_id=appointment.id)
    session.expire(appointment, ["allocations"])


def allocate_shared(session: Session, slot: Slot, holds: list[Hold], *, zone: str) -> None:
    """Hold a group session's shared resources (performer, room, kit) once, owned by its slot, or raise
    BookingConflict naming the first one taken. The caller holds the slot's lock (see workflows.appointments)."""
    _hold(session, holds, {"slot_id": slot.id}, zone=zone)


def release_shared(session: Session, slot: Slot) -> None:
    """Give back a group session's shared holds: its last participant has gone."""
    session.execute(delete(Allocation).where(Allocation.slot_id == slot.id))


def _hold(
    session: Session, holds: list[Hold], owner: dict, *, zone: str, ignore_appointment_id: int | None = None
) -> None:
    _refuse_self_overlap(session, holds, zone=zone)
    if not holds:
        return
    session.flush()  # what the ORM still holds back (a released hold, the owner's row) goes before the Core insert
    # One order for every booking: two bookings inserting the same resources meet on the first, never crosswise.
    ordered = sorted(holds, key=lambda h: (h.resource_kind.value, h.resource_id, h.starts_at))
    rows = [owner | _range_of(h) for h in ordered]
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        taken = find_conflict(session, holds, ignore_appointment_id=ignore_appointment_id)
        if taken is not None:
            raise conflict(session, taken, zone=zone)
        connection.execute(insert(Allocation).values(rows))
        return
    # Executed with a list of rows, SQLAlchemy sends them in one multi-row INSERT ("insertmanyvalues") compiled
    # once per process, where `.values(rows)` would be compiled again for every booking.
    inserted = connection.execute(_HOLDS_INSERT, rows).all()
    if len(inserted) == len(rows):
        return
    held = {(row.resource_kind, row.resource_id, row.starts_at) for row in inserted}
    if inserted:
        # The caller may go on after the 409 (a series books each session in its own savepoint): leave no part.
        connection.execute(delete(Allocation).where(Allocation.id.in_([row.id for row in inserted])))
    taken = next(h for h in holds if (h.resource_kind, h.resource_id, h.starts_at) not in held)
    raise conflict(session, taken, zone=zone)


def insert_holding(
    session: Session,
    table: Table,
    row: dict,
    holds: list[Hold],
    *,
    zone: str,
    dependents: Sequence[tuple[Table, dict]] = (),
) -> dict:
    """PostgreSQL only: insert the owner's row (an appointment) and its holds in one statement, the holds' INSERT a
    data-modifying CTE of the owner's INSERT … RETURNING (its id is theirs), and give back the owner's row as
    inserted (every column, by key). The exclusion constraint is the check, as in allocate(); on a conflict the holds
    that went in and the owner's row are deleted (a caller that goes on after the 409 keeps no appointment holding
    nothing) and BookingConflict names the first refused.

    `dependents`: rows of other tables inserted by the same statement, only if every hold went in (the audit row of
    a refused booking could not be deleted); a value NEW_ID is the owner's id, an IdText is built around it in SQL."""
    _refuse_self_overlap(session, holds, zone=zone)
    session.flush()  # what the ORM still holds back (a released hold) goes before the Core insert
    ordered = sorted(holds, key=lambda h: (h.resource_kind.value, h.resource_id, h.starts_at))
    full = with_defaults(table, row)
    parameters = {f"owner_{name}": value for name, value in full.items()}
    for i, hold in enumerate(ordered):
        parameters |= {f"hold{i}_{name}": value for name, value in _range_of(hold).items()}
    shapes, given = around_new_id(dependents)
    parameters |= given
    connection = session.connection()
    names = tuple(full)
    inserted = connection.execute(_holding(table, names, len(ordered), tuple(shapes)), parameters).one()
    if len(inserted.held_kinds) == len(ordered):
        returned = inserted._mapping
        return dict.fromkeys(table.c.keys()) | full | {key: returned[key] for key in _filled_by_database(table, names)}
    held = set(zip(inserted.held_kinds, inserted.held_ids, inserted.held_starts, strict=True))
    connection.execute(delete(Allocation).where(Allocation.appointment_id == inserted.id))
    connection.execute(delete(table).where(table.c.id == inserted.id))
    taken = next(h for h in holds if (h.resource_kind, h.resource_id, h.starts_at) not in held)
    raise conflict(session, taken, zone=zone)


@functools.cache
def _filled_by_database(table: Table, names: tuple[str, ...]) -> tuple[str, ...]:
    # What the row holds as the database has it rather than as sent: the id, server defaults not sent, and what the
    # database normalises (a NUMERIC's scale, a timestamp's zone). The rest is what was sent, or NULL. Returning only
    # these keeps the statement short enough for psycopg to cache its conversion (4 kB).
    return tuple(
        c.key
        for c in table.c
        if c.primary_key
        or (c.key not in names and c.server_default is not None)
        or (c.key in names and _normalised(c.type))
    )


def _normalised(type_) -> bool:
    # A TypeDecorator (UTCDateTime) answers for its implementation's type.
    return isinstance(getattr(type_, "impl_instance", type_), (Numeric, DateTime))


@functools.cache
def _holding(table: Table, names: tuple[str, ...], count: int, dependents: tuple = ()):
    # Built once per shape (the owner's columns, the number of holds, the dependents' columns and what each holds),
    # every value bound: "owner_<column>", "hold<i>_<column>", "row<i>_<column>" (an IdText's "…_before", "…_after").
    # The holds and the dependents are selected from the owner's CTE (one row), so they carry its id.
    owner = (
        insert(table)
        .values({name: bindparam(f"owner_{name}", type_=table.c[name].type) for name in names})
        .returning(*(table.c[key] for key in _filled_by_database(table, names)))
        .cte("owner")
    )
    columns = ("resource_kind", "resource_id", "starts_at", "ends_at")
    table_columns = Allocation.__table__.c
    rows = [
        select(
            owner.c.id,
            *(
                cast(bindparam(f"hold{i}_{name}", type_=table_columns[name].type), table_columns[name].type)
                for name in columns
            ),
        )
        for i in range(count)
    ]
    holds = (
        pg_insert(Allocation)
        .from_select(["appointment_id", *columns], union_all(*rows) if count > 1 else rows[0])
        .on_conflict_do_nothing()  # the exclusion constraint is its arbiter, as _HOLDS_INSERT's
        .returning(Allocation.resource_kind, Allocation.resource_id, Allocation.starts_at)
        .cte("holds")
    )
    # What went in, as arrays (empty, not NULL, when nothing did): a refused hold is named without another query.
    held = {
        f"held_{name}": func.coalesce(select(func.array_agg(column)).scalar_subquery(), literal_column("'{}'"))
        for name, column in (
            ("kinds", holds.c.resource_kind),
            ("ids", holds.c.resource_id),
            ("starts", holds.c.starts_at),
        )
    }
    # Data-modifying CTEs run whether or not the query reads them; these insert nothing unless every hold went in.
    all_held = select(func.count()).select_from(holds).scalar_subquery() == count
    ctes = [
        insert(other)
        .from_select(
            [name for name, _kind in columns],
            select(*values_around_id(owner.c.id, i, other, columns)).select_from(owner).where(all_held),
        )
        .cte(f"row{i}")
        for i, (other, columns) in enumerate(dependents)
    ]
    return select(owner, *(value.label(name) for name, value in held.items())).add_cte(*ctes)


_HOLDS_INSERT = (
    pg_insert(Allocation)
    .on_conflict_do_nothing()  # the exclusion constraint is its arbiter: a refused hold is skipped, not raised
    .returning(Allocation.id, Allocation.resource_kind, Allocation.resource_id, Allocation.starts_at)
)


def _range_of(hold: Hold) -> dict:
    return {
        "resource_kind": hold.resource_kind,
        "resource_id": hold.resource_id,
        "starts_at": hold.starts_at,
        "ends_at": hold.ends_at,
    }


def release(session: Session, appointment: Appointment, *, kinds: set[AllocationResource] | None = None) -> None:
    """Give back the appointment's holds (all, or those of some resource kinds)."""
    for allocation in list(appointment.allocations):
        if kinds is None or allocation.resource_kind in kinds:
            appointment.allocations.remove(allocation)
            session.delete(allocation)


def _refuse_self_overlap(session: Session, holds: list[Hold], *, zone: str) -> None:
    for i, first in enumerate(holds):
        for second in holds[i + 1 :]:
            same = (first.resource_kind, first.resource_id) == (second.resource_kind, second.resource_id)
            if same and first.overlaps(second.starts_at, second.ends_at):
                raise conflict(session, second, zone=zone)
