"""Read models of the planning: slots with the appointment that holds them, per program or per week.

Each function runs a fixed number of queries whatever the number of slots or appointments (P6): the
slots in one query, the appointments holding them in one more, with their patient and IDEL joined.
"""

import datetime as dt
import functools
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from sqlalchemy import Integer, Select, and_, bindparam, func, select
from sqlalchemy.orm import Session, joinedload

from hub.db import UTCDateTime, driver_rows
from hub.models import (
    APPOINTMENT_STATE_LABELS,
    Appointment,
    AppointmentState,
    Patient,
    Profession,
    Professional,
    SessionProgram,
    Slot,
    SlotState,
    appointment_state_label,
)
from hub.models.patient import patient_display_name
from hub.models.professional import professional_full_name
from hub.models.scheduling import state_label
from hub.services import directory
from scheduling.slots import HOLDING_STATES

FREE = "free"
CANCELLED = "cancelled"
# A slot whose appointment was cancelled is free again; `cancelled` is the slot of a cancelled occurrence.
SLOT_STATE_LABELS = {state.value: label for state, label in APPOINTMENT_STATE_LABELS.items()} | {
    FREE: "Libre",
    CANCELLED: "Séance annulée",
}


def slot_state(state: SlotState, capacity: int, taken: int, holder: AppointmentState | None) -> str:
    """`free`, `cancelled`, or the state of the appointment that holds the slot (`holder`); a group session is
    `free` while it has a seat left."""
    if capacity > 1 and state is SlotState.OPEN and taken < capacity:
        return FREE
    if holder is not None:
        return holder.value
    return CANCELLED if state is SlotState.CANCELLED else FREE


@dataclass(frozen=True)
class SlotView:
    slot: Slot
    appointment: Appointment | None
    # Everyone holding the slot: its one appointment, or a group session's participants in booking order.
    participants: list[Appointment] = field(default_factory=list)

    # Cached: a page asks each slot's state several times, and each ask went through the slot's program.
    @cached_property
    def capacity(self) -> int:
        return self.slot.program.capacity

    @cached_property
    def is_group(self) -> bool:
        return self.capacity > 1

    @property
    def seats_left(self) -> int:
        if self.slot.state is SlotState.CANCELLED:
            return 0
        return max(self.capacity - len(self.participants), 0)

    @cached_property
    def state(self) -> str:
        holder = self.appointment.state if self.appointment is not None else None
        return slot_state(self.slot.state, self.capacity, len(self.participants), holder)

    @property
    def label(self) -> str:
        if self.is_group and self.slot.state is SlotState.OPEN:
            return f"{len(self.participants)}/{self.capacity} participants"
        if self.appointment is not None:
            return appointment_state_label(self.appointment)
        return SLOT_STATE_LABELS[self.state]

    @property
    def is_bookable(self) -> bool:
        return self.state == FREE


def views_of(session: Session, slots: list[Slot]) -> list[SlotView]:
    """Each slot with the appointment holding it (one query for all of them)."""
    if not slots:
        return []
    holding = session.scalars(
        select(Appointment)
        .options(joinedload(Appointment.patient), joinedload(Appointment.accompanying))
        .where(Appointment.slot_id.in_([s.id for s in slots]), Appointment.state.in_(HOLDING_STATES))
    )
    by_slot: dict[int | None, list[Appointment]] = {}
    for appointment in holding:
        by_slot.setdefault(appointment.slot_id, []).append(appointment)
    views = []
    for slot in slots:
        participants = sorted(by_slot.get(slot.id, []), key=lambda a: a.id)
        views.append(SlotView(slot, participants[0] if participants else None, participants))
    return views


def _slots_query(program_ids, start: dt.datetime, end: dt.datetime):
    return select(Slot).where(Slot.program_id.in_(program_ids), Slot.starts_at >= start, Slot.starts_at < end)


def program_slots(
    session: Session,
    program_id: int,
    start: dt.datetime,
    end: dt.datetime,
    *,
    page: int = 1,
    per_page: int | None = None,
) -> tuple[list[SlotView], int]:
    """A program's slots starting in [start, end), in time order, one page of them; returns (views, total)."""
    query = _slots_query([program_id], start, end)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    query = query.order_by(Slot.starts_at, Slot.id)
    if per_page is not None:
        query = query.limit(per_page).offset((page - 1) * per_page)
    return views_of(session, list(session.scalars(query))), total


class ProgramOfSlots(NamedTuple):
    """What the slot listing needs of its program (one Core row, no entity)."""

    id: int
    cpts_id: int
    zone: str
    horizon_weeks: int
    capacity: int


class Participant(NamedTuple):
    appointment_id: int
    patient_id: int
    state: AppointmentState


class ListedSlot(NamedTuple):
    """A slot of the listing with what SlotView computes of it (state, seats left, participants), from Core rows:
    the API's slot listing reads 40 slots a page, and their entities cost more than its statements."""

    id: int
    program_id: int
    occurrence_start: dt.datetime
    starts_at: dt.datetime
    ends_at: dt.datetime
    position: int
    is_exception: bool
    state: str
    appointment_id: int | None
    capacity: int
    seats_left: int
    participants: list[Participant]


@functools.cache
def _program_of_slots_statement() -> Select:
    # Built once with the program as a parameter, as the statements below: building them cost as much as running.
    return select(
        SessionProgram.id,
        SessionProgram.cpts_id,
        SessionProgram.zone,
        SessionProgram.horizon_weeks,
        SessionProgram.capacity,
    ).where(SessionProgram.id == bindparam("program_id", type_=Integer))


def program_of_slots(session: Session, program_id: int) -> ProgramOfSlots | None:
    rows = driver_rows(session, _program_of_slots_statement(), {"program_id": program_id})
    return ProgramOfSlots(*rows[0]) if rows else None


@functools.cache
def _slot_page_statement() -> Select:
    """One page of a program's slots in [start, end) with the total (a window count, taken before LIMIT) and the
    appointments holding them (an outer join: a group session's several participants give several rows)."""
    page = (
        select(
            Slot.id,
            Slot.program_id,
            Slot.occurrence_start,
            Slot.starts_at,
            Slot.ends_at,
            Slot.position,
            Slot.is_exception,
            Slot.state,
            func.count().over().label("total"),
        )
        .where(
            Slot.program_id == bindparam("program_id", type_=Integer),
            Slot.starts_at >= bindparam("start", type_=UTCDateTime),
            Slot.starts_at < bindparam("end", type_=UTCDateTime),
        )
        .order_by(Slot.starts_at, Slot.id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery()
    )
    holding = and_(Appointment.slot_id == page.c.id, Appointment.state.in_(HOLDING_STATES))
    # The appointment's columns named apart from the slot's (`id`, `state`): the driver's rows need unique names.
    return (
        select(
            page,
            Appointment.id.label("appointment_id"),
            Appointment.patient_id.label("patient_id"),
            Appointment.state.label("appointment_state"),
        )
        .outerjoin(Appointment, holding)
        .order_by(page.c.starts_at, page.c.id, Appointment.id)
    )


@functools.cache
def _slot_count_statement() -> Select:
    return select(func.count(Slot.id).label("total")).where(
        Slot.program_id == bindparam("program_id", type_=Integer),
        Slot.starts_at >= bindparam("start", type_=UTCDateTime),
        Slot.starts_at < bindparam("end", type_=UTCDateTime),
    )


def program_slot_page(
    session: Session, program: ProgramOfSlots, start: dt.datetime, end: dt.datetime, *, page: int, per_page: int
) -> tuple[list[ListedSlot], int]:
    """The API's listing: a page of the program's slots starting in [start, end), in time order, with the total,
    in one statement (two for a page past the end, which has no row to carry the total), run by the driver (P7)."""
    window = {"program_id": program.id, "start": start, "end": end}
    rows = driver_rows(session, _slot_page_statement(), window | {"limit": per_page, "offset": (page - 1) * per_page})
    if not rows:
        total = driver_rows(session, _slot_count_statement(), window)[0][0] if page > 1 else 0
        return [], total
    firsts: list = []  # each slot's first row (a group session's next rows only add participants)
    held: dict[int, list[Participant]] = {}
    for row in rows:
        slot_id, *_columns, _total, appointment_id, patient_id, state = row
        if slot_id not in held:
            held[slot_id] = []
            firsts.append(row)
        if appointment_id is not None:
            held[slot_id].append(Participant(appointment_id, patient_id, state))
    return [_listed(row, held[row[0]], program.capacity) for row in firsts], rows[0].total


def _listed(row, participants: list[Participant], capacity: int) -> ListedSlot:
    """SlotView's rules (state, seats left) on a row."""
    slot_id, program_id, occurrence_start, starts_at, ends_at, position, is_exception, state = row[:8]
    seats_left = 0 if state is SlotState.CANCELLED else max(capacity - len(participants), 0)
    first = participants[0] if participants else None
    return ListedSlot(
        slot_id,
        program_id,
        occurrence_start,
        starts_at,
        ends_at,
        position,
        is_exception,
        slot_state(state, capacity, len(participants), first.state if first else None),
        first.appointment_id if first else None,
        capacity,
        seats_left,
        participants,
    )


@dataclass(frozen=True, slots=True)
class WeekProgram:
    id: int
    name: str
    performer_name: str
    is_active: bool


@dataclass(frozen=True, slots=True)
class WeekVisit:
    """An appointment holding a slot of the week: what the planning shows of it (`allows` reads its state)."""

    id: int
    state: AppointmentState
    label: str
    patient_name: str
    idel_name: str | None
    declined_reason: str | None


@dataclass(slots=True)
class WeekSlot:
    """A slot of the week with whoever holds it: SlotView's state and label, from plain rows."""

    id: int
    starts_at: dt.datetime
    state: str
    label: str
    is_group: bool
    participants: list[WeekVisit]

    @property
    def appointment(self) -> WeekVisit | None:
        return self.participants[0] if self.participants else None

    @property
    def is_bookable(self) -> bool:
        return self.state == FREE


@dataclass
class WeekBoard:
    """The week of a CPTS: for each program, for each local day, its slots in time order."""

    days: list[dt.date]
    programs: list[WeekProgram]
    cells: dict[tuple[int, dt.date], list[WeekSlot]] = field(default_factory=dict)

    def cell(self, program_id: int, day: dt.date) -> list[WeekSlot]:
        return self.cells.get((program_id, day), [])

    @property
    def appointment_count(self) -> int:
        return sum(len(slot.participants) for slots in self.cells.values() for slot in slots)


def week_board(session: Session, cpts_id: int, days: list[dt.date], start: dt.datetime, end: dt.datetime, *, zone):
    """The CPTS's programs (active ones, and others with slots that week) and their slots in [start, end) with the
    appointments holding them: one statement, read as plain rows (the ORM's loading of some forty slots and
    appointments with their patients and IDELs was a third of the page)."""
    board = WeekBoard(days=days, programs=[])
    program, slot = None, None
    for row in driver_rows(session, _week_statement(), {"cpts_id": cpts_id, "start": start, "end": end}):
        if program is None or program.id != row.program_id:
            program = WeekProgram(
                row.program_id, row.program_name, professional_full_name(row.first_name, row.last_name), row.is_active
            )
            slot = None
            if row.is_active or row.slot_id is not None:
                board.programs.append(program)
        if row.slot_id is None:
            continue
        if slot is None or slot.id != row.slot_id:
            slot = WeekSlot(row.slot_id, row.starts_at, FREE, "", row.capacity > 1, [])
            day = row.starts_at.astimezone(zone).date()
            board.cells.setdefault((row.program_id, day), []).append(slot)
            _settle(slot, row)  # a slot nobody holds
        if row.appointment_id is not None:
            slot.participants.append(
                WeekVisit(
                    row.appointment_id,
                    row.state,
                    state_label(row.state, row.kind, row.accompanying_id),
                    patient_display_name(row.used_last_name, row.birth_name, row.used_first_name, row.first_name_given),
                    professional_full_name(row.idel_first_name, row.idel_last_name) if row.accompanying_id else None,
                    row.declined_reason,
                )
            )
            _settle(slot, row)
    return board


def _settle(slot: WeekSlot, row) -> None:
    """The slot's state and label as SlotView tells them, once its participants so far are known."""
    holder = slot.appointment
    holder_state = holder.state if holder is not None else None
    slot.state = slot_state(row.slot_state, row.capacity, len(slot.participants), holder_state)
    if slot.is_group and row.slot_state is SlotState.OPEN:
        slot.label = f"{len(slot.participants)}/{row.capacity} participants"
    else:
        slot.label = holder.label if holder is not None else SLOT_STATE_LABELS[slot.state]


@functools.cache
def _week_statement() -> Select:
    """week_board's statement, built once with the CPTS and the bounds as parameters: each program (with its
    performer), each of its slots of the week, each appointment holding one (with its patient and IDEL), in the
    page's order."""
    program, slot, appointment = SessionProgram.__table__.c, Slot.__table__.c, Appointment.__table__.c
    performer, patient = Professional.__table__.alias("performer"), Patient.__table__
    idel = Professional.__table__.alias("idel")
    slots = Slot.__table__
    appointments = Appointment.__table__
    return (
        select(
            program.id.label("program_id"),
            program.name.label("program_name"),
            performer.c.first_name,
            performer.c.last_name,
            program.is_active,
            program.capacity,
            slot.id.label("slot_id"),
            slot.starts_at,
            slot.state.label("slot_state"),
            appointment.id.label("appointment_id"),
            appointment.state,
            appointment.kind,
            appointment.accompanying_id,
            patient.c.used_last_name,
            patient.c.birth_name,
            patient.c.used_first_name,
            patient.c.first_birth_given_name.label("first_name_given"),
            idel.c.first_name.label("idel_first_name"),
            idel.c.last_name.label("idel_last_name"),
            appointment.declined_reason,
        )
        .select_from(SessionProgram.__table__)
        .join(performer, performer.c.id == program.performer_id)
        .outerjoin(
            slots,
            and_(
                slot.program_id == program.id,
                slot.starts_at >= bindparam("start", type_=UTCDateTime),
                slot.starts_at < bindparam("end", type_=UTCDateTime),
            ),
        )
        .outerjoin(appointments, and_(appointment.slot_id == slot.id, appointment.state.in_(HOLDING_STATES)))
        .outerjoin(patient, patient.c.id == appointment.patient_id)
        .outerjoin(idel, idel.c.id == appointment.accompanying_id)
        .where(program.cpts_id == bindparam("cpts_id", type_=Integer))
        .order_by(program.name, program.id, slot.starts_at, slot.id, appointment.id)
    )


@dataclass
class Visits:
    """What a professional has to do: visits offered to them, the day's sessions, the next confirmed ones."""

    offered: list[Appointment]
    today: list[Appointment]
    upcoming: list[Appointment]


def _with_details(query):
    # The consents too: the visits' cards say when the telehealth consent is missing (one query, not one per card).
    return query.options(
        joinedload(Appointment.patient).selectinload(Patient.consents),
        joinedload(Appointment.performer),
        joinedload(Appointment.slot).joinedload(Slot.program),
        joinedload(Appointment.room),
        joinedload(Appointment.kit),
    ).order_by(Appointment.starts_at, Appointment.id)


@dataclass
class AssistedSessions:
    """The teleconsultations a professional accompanies: the next ones (proposed to them, confirmed or under way)
    and those done in a year, the most recent first, each list cut at a page with its count."""

    upcoming: list[Appointment]
    upcoming_count: int
    done: list[Appointment]
    done_count: int

    @property
    def next(self) -> Appointment | None:
        return self.upcoming[0] if self.upcoming else None


ASSISTED_UPCOMING_STATES = (AppointmentState.PROPOSED, AppointmentState.CONFIRMED, AppointmentState.CHECKED_IN)


def assisted_sessions(
    session: Session, professional_id: int, *, now: dt.datetime, year: tuple[dt.datetime, dt.datetime], limit: int = 10
) -> AssistedSessions:
    """Four queries: each list and its count. `year`: the [start, end) of the year whose done sessions count."""
    mine = Appointment.accompanying_id == professional_id
    upcoming = (mine, Appointment.state.in_(ASSISTED_UPCOMING_STATES), Appointment.ends_at >= now)
    done = (
        mine,
        Appointment.state == AppointmentState.DONE,
        Appointment.starts_at >= year[0],
        Appointment.starts_at < year[1],
    )
    return AssistedSessions(
        upcoming=list(session.scalars(_with_details(select(Appointment).where(*upcoming)).limit(limit))),
        upcoming_count=session.scalar(select(func.count(Appointment.id)).where(*upcoming)) or 0,
        done=list(
            session.scalars(
                _with_details(select(Appointment).where(*done))
                .order_by(None)
                .order_by(Appointment.starts_at.desc(), Appointment.id.desc())
                .limit(limit)
            )
        ),
        done_count=session.scalar(select(func.count(Appointment.id)).where(*done)) or 0,
    )


def accompanying_professionals(
    session: Session, cpts_id: int, *, program: SessionProgram | None = None
) -> list[Professional]:
    """Who may accompany a teleconsultation of `program`: the officine's pharmacists for an officine's program,
    the CPTS's active IDELs otherwise (a pharmacist accompanies only in their officine, and a booking left without
    a choice takes the officine's own)."""
    if program is not None and program.is_at_pharmacy and program.organisation_id is not None:
        return directory.officine_pharmacists(session, program.organisation_id)
    return list(
        session.scalars(
            select(Professional)
            .where(
                Professional.cpts_id == cpts_id,
                Professional.is_active.is_(True),
                Professional.profession == Profession.NURSE,
            )
            .order_by(Professional.last_name, Professional.first_name)
        )
    )
