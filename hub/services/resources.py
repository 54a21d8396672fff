"""The kits, rooms and dedicated teleconsultation places of a CPTS: created, edited and retired by the
coordination; which of them a program may be assigned and a booking may hold; each one's programs and bookings.

A retired resource stays, with its history: the appointments that held it keep naming it. It is never retired
while it still serves, so that no patient is expected somewhere, or with equipment, that is no longer there."""

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased, joinedload

from hub import audit
from hub.db import utcnow
from hub.errors import Conflict, NotFound, RuleViolation, ValidationFailed
from hub.models import (
    PLACE_RESOURCE_KINDS,
    Allocation,
    AllocationResource,
    Appointment,
    AppointmentState,
    Organisation,
    Resource,
    ResourceKind,
    SessionProgram,
    Slot,
)

EDITABLE = ("name", "organisation_id", "address", "description")
# The holds of a resource: a room and a dedicated place are both held as the appointment's room.
HELD_AS = (AllocationResource.ROOM, AllocationResource.KIT)
# What a program's fields may point at, and how a refusal names the field's resource.
ASSIGNABLE = {"room_id": PLACE_RESOURCE_KINDS, "kit_id": frozenset({ResourceKind.KIT})}
_UNKNOWN = {"room_id": "Salle ou lieu inconnu dans la CPTS.", "kit_id": "Matériel inconnu dans la CPTS."}
_WRONG_KIND = {
    "room_id": "Choisissez une salle ou un lieu dédié, pas du matériel.",
    "kit_id": "Choisissez du matériel, pas une salle ou un lieu.",
}
_RETIRED = {
    "room_id": "« {name} » est retiré(e) : choisissez une salle ou un lieu en service.",
    "kit_id": "« {name} » est retiré : choisissez un matériel en service.",
}


@dataclass(frozen=True)
class Booking:
    """An appointment holding a resource, over the time the resource is held (the accompaniment window)."""

    resource_id: int
    appointment: Appointment
    starts_at: dt.datetime
    ends_at: dt.datetime

    @property
    def program_name(self) -> str | None:
        slot = self.appointment.slot
        return slot.program.name if slot is not None else None


@dataclass
class Upcoming:
    """The first upcoming bookings of a resource and how many there are in all."""

    first: list[Booking] = field(default_factory=list)
    total: int = 0


@dataclass(frozen=True)
class Overview:
    """A resource with the programs it is assigned to and its upcoming bookings."""

    resource: Resource
    programs: list[SessionProgram]
    upcoming: Upcoming


# --- records ----------------------------------------------------------------------------------------------


def create_resource(session: Session, actor, data: dict) -> Resource:
    _check(session, actor.cpts_id, data)
    resource = Resource(cpts_id=actor.cpts_id, is_active=True, **data)
    session.add(resource)
    session.flush()  # the audit line names the new resource
    audit.record(session, actor=actor, action="resource.create", target=resource, details={"kind": resource.kind})
    return resource


def update_resource(session: Session, actor, resource: Resource, changes: dict) -> Resource:
    """Its name, organisation, address and description; a kit stays a kit (programs point at it as one)."""
    _check(session, resource.cpts_id, changes, exclude_id=resource.id)
    changed = sorted(key for key in EDITABLE if key in changes and getattr(resource, key) != changes[key])
    for key in changed:
        setattr(resource, key, changes[key])
    if changed:
        audit.record(session, actor=actor, action="resource.update", target=resource, details={"fields": changed})
    return resource


def retire_resource(session: Session, actor, resource: Resource, *, now: dt.datetime | None = None) -> Resource:
    """Retire a resource that nothing counts on any more: no running program is assigned it and no upcoming
    appointment holds it. Otherwise refused, naming the programs and the number of appointments, so that the
    coordination reassigns them first rather than a patient arriving without the planned equipment or place."""
    now = now or utcnow()
    if not resource.is_active:
        raise Conflict(f"« {resource.name} » est déjà retiré(e).")
    running = running_programs(session, resource, now=now)
    upcoming = upcoming_count(session, resource, now=now)
    if running or upcoming:
        raise RuleViolation(
            _still_serving(resource, running, upcoming),
            programs=[{"id": p.id, "name": p.name} for p in running],
            upcoming_bookings=upcoming,
        )
    resource.is_active, resource.retired_at = False, now
    audit.record(session, actor=actor, action="resource.retire", target=resource)
    return resource


def _still_serving(resource: Resource, running: list[SessionProgram], upcoming: int) -> str:
    reasons, steps = [], []
    if running:
        several = len(running) > 1
        names = ", ".join(f"« {p.name} »" for p in running)
        reasons.append(f"{'les programmes' if several else 'le programme'} {names} l'utilise{'nt' if several else ''}")
        steps.append(
            f"choisissez un autre matériel ou lieu pour {'ces programmes' if several else 'ce programme'} "
            f"(« Modifier toute la série ») ou arrêtez-{'les' if several else 'le'}"
        )
    if upcoming:
        reasons.append(f"{upcoming} rendez-vous à venir le réserve{'nt' if upcoming > 1 else ''}")
        steps.append("les rendez-vous déjà pris le gardent : annulez-les, ou attendez qu'ils soient passés")
    return f"« {resource.name} » ne peut pas être retiré(e) : {' et '.join(reasons)}. D'abord, {' ; '.join(steps)}."


def _check(session: Session, cpts_id: int, data: dict, *, exclude_id: int | None = None) -> None:
    errors = {}
    if data.get("organisation_id") is not None:
        organisation = session.get(Organisation, data["organisation_id"])
        if organisation is None or organisation.tenant_id != cpts_id:
            errors["organisation_id"] = "Structure inconnue dans la CPTS."
    if data.get("name"):
        # Two resources in service with one name could not be told apart in the program form.
        same = select(Resource.id).where(
            Resource.cpts_id == cpts_id, Resource.is_active.is_(True), func.lower(Resource.name) == data["name"].lower()
        )
        if exclude_id is not None:
            same = same.where(Resource.id != exclude_id)
        if session.scalar(same.limit(1)) is not None:
            errors["name"] = "Un matériel ou lieu en service porte déjà ce nom."
    if errors:
        raise ValidationFailed(errors)


def get_resource(session: Session, resource_id: int, *, cpts_id: int) -> Resource:
    resource = session.get(Resource, resource_id)
    if resource is None or resource.cpts_id != cpts_id:
        raise NotFound("Matériel ou lieu introuvable.")
    return resource


def list_resources(session: Session, cpts_id: int) -> list[Resource]:
    """In service first, then the retired ones; by kind and name."""
    return list(
        session.scalars(
            select(Resource)
            .options(joinedload(Resource.organisation))
            .where(Resource.cpts_id == cpts_id)
            .order_by(Resource.is_active.desc(), Resource.kind, Resource.name, Resource.id)
        )
    )


def assignable(session: Session, cpts_id: int, field: str) -> list[Resource]:
    """What the program form offers for `room_id` or `kit_id`: the CPTS's resources in service of that use."""
    return list(
        session.scalars(
            select(Resource)
            .where(Resource.cpts_id == cpts_id, Resource.is_active.is_(True), Resource.kind.in_(ASSIGNABLE[field]))
            .order_by(Resource.kind, Resource.name)
        )
    )


# --- assignment and booking -------------------------------------------------------------------------------


def assignment_errors(session: Session, cpts_id: int, data: dict) -> dict[str, str]:
    """The refusal of each of `room_id`, `kit_id` given in `data` that a program may not be assigned: a resource
    of another CPTS (or none), of the wrong kind, or retired."""
    errors = {}
    for key, kinds in ASSIGNABLE.items():
        if data.get(key) is None:
            continue
        resource = session.get(Resource, data[key])
        if resource is None or resource.cpts_id != cpts_id:
            errors[key] = _UNKNOWN[key]
        elif resource.kind not in kinds:
            errors[key] = _WRONG_KIND[key]
        elif not resource.is_active:
            errors[key] = _RETIRED[key].format(name=resource.name)
    return errors


def require_bookable(program: SessionProgram) -> None:
    """A booking holds the program's room and kit: neither may be retired."""
    for resource in (program.room, program.kit):
        if resource is not None and not resource.is_active:
            raise RuleViolation(
                f"« {resource.name} » est retiré(e) : choisissez un autre matériel ou lieu pour le programme "
                "avant de réserver."
            )


# --- what a resource serves -------------------------------------------------------------------------------


def overview(session: Session, rows: list[Resource], *, now: dt.datetime, first: int = 3) -> list[Overview]:
    """Each resource with its programs and its `first` next bookings: two queries for any number of them."""
    ids = [r.id for r in rows]
    using = programs_using(session, ids)
    upcoming = upcoming_bookings(session, ids, now=now, first=first)
    return [Overview(r, using[r.id], upcoming[r.id]) for r in rows]


def programs_using(session: Session, resource_ids: list[int]) -> dict[int, list[SessionProgram]]:
    """The programs each resource is assigned to (as room or kit), in one query."""
    using: dict[int, list[SessionProgram]] = {i: [] for i in resource_ids}
    if not resource_ids:
        return using
    rows = session.scalars(
        select(SessionProgram)
        .where(or_(SessionProgram.room_id.in_(resource_ids), SessionProgram.kit_id.in_(resource_ids)))
        .order_by(SessionProgram.name, SessionProgram.id)
    )
    for program in rows:
        for resource_id in using.keys() & {program.room_id, program.kit_id}:
            using[resource_id].append(program)
    return using


def running_programs(session: Session, resource: Resource, *, now: dt.datetime) -> list[SessionProgram]:
    """The programs assigned the resource that still make sessions: not stopped, not past their last day."""
    return [p for p in programs_using(session, [resource.id])[resource.id] if is_running(p, now)]


def is_running(program: SessionProgram, now: dt.datetime) -> bool:
    """Whether the program still makes sessions: not stopped, not past its last day."""
    today = now.astimezone(ZoneInfo(program.zone)).date()
    return program.is_active and (program.valid_until is None or program.valid_until >= today)


def _held(resource_ids: list[int]):
    return Allocation.resource_kind.in_(HELD_AS), Allocation.resource_id.in_(resource_ids)


def _holder():
    """The appointment a hold is shown through: its own, or for a group session's shared hold (owned by the slot)
    the session's first participant, so that the session reads as one booking of the resource."""
    participant = aliased(Appointment)
    first_participant = (
        select(func.min(participant.id))
        .where(participant.slot_id == Allocation.slot_id, participant.state != AppointmentState.CANCELLED)
        .correlate(Allocation)
        .scalar_subquery()
    )
    return func.coalesce(Allocation.appointment_id, first_participant)


def _with_details(query):
    return query.options(
        joinedload(Appointment.performer),
        joinedload(Appointment.slot).joinedload(Slot.program),
    )


def upcoming_bookings(
    session: Session, resource_ids: list[int], *, now: dt.datetime, first: int = 3
) -> dict[int, Upcoming]:
    """For each resource, its `first` next bookings (held now or later) and their total, in one query whatever the
    number of resources and bookings."""
    found = {i: Upcoming() for i in resource_ids}
    if not resource_ids:
        return found
    ranked = (
        select(
            Allocation.resource_id,
            _holder().label("appointment_id"),
            Allocation.starts_at,
            Allocation.ends_at,
            func.row_number()
            .over(partition_by=Allocation.resource_id, order_by=(Allocation.starts_at, Allocation.id))
            .label("rank"),
            func.count().over(partition_by=Allocation.resource_id).label("total"),
        )
        .where(*_held(resource_ids), Allocation.ends_at > now)
        .subquery()
    )
    rows = session.execute(
        _with_details(
            select(ranked.c.resource_id, ranked.c.starts_at, ranked.c.ends_at, ranked.c.total, Appointment)
            .join(Appointment, Appointment.id == ranked.c.appointment_id)
            .where(ranked.c.rank <= first)
            .order_by(ranked.c.resource_id, ranked.c.starts_at)
        )
    )
    for resource_id, starts_at, ends_at, total, appointment in rows:
        found[resource_id].first.append(Booking(resource_id, appointment, starts_at, ends_at))
        found[resource_id].total = total
    return found


def upcoming_count(session: Session, resource: Resource, *, now: dt.datetime) -> int:
    """How many appointments hold the resource now or later."""
    held = select(func.count()).select_from(Allocation).where(*_held([resource.id]), Allocation.ends_at > now)
    return session.execute(held).scalar_one()


def bookings(
    session: Session,
    resource: Resource,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    ended_by: dt.datetime | None = None,
    newest_first: bool = False,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[Booking], int]:
    """The appointments that hold the resource at some time in [start, end) (and, with `ended_by`, no longer hold it
    then: its history), a page of them; (bookings, total)."""
    window = [*_held([resource.id])]
    if start is not None:
        window.append(Allocation.ends_at > start)
    if end is not None:
        window.append(Allocation.starts_at < end)
    if ended_by is not None:
        window.append(Allocation.ends_at <= ended_by)
    total = session.execute(select(func.count()).select_from(Allocation).where(*window)).scalar_one()
    order = (
        [Allocation.starts_at.desc(), Allocation.id.desc()] if newest_first else [Allocation.starts_at, Allocation.id]
    )
    query = select(Allocation, Appointment).join(Appointment, Appointment.id == _holder())
    rows = session.execute(
        _with_details(query.where(*window).order_by(*order).limit(per_page).offset((page - 1) * per_page))
    )
    return [Booking(resource.id, appointment, held.starts_at, held.ends_at) for held, appointment in rows], total
