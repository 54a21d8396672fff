"""Read models of the planning: slots with the appointment that holds them, per program or per week.

Each function runs a fixed number of queries whatever the number of slots or appointments (P6): the
slots in one query, the appointments holding them in one more, with their patient and IDEL joined.
"""

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

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
from hub.services import directory
from scheduling.slots import HOLDING_STATES

FREE = "free"
CANCELLED = "cancelled"
# A slot whose appointment was cancelled is free again; `cancelled` is the slot of a cancelled occurrence.
SLOT_STATE_LABELS = {state.value: label for state, label in APPOINTMENT_STATE_LABELS.items()} | {
    FREE: "Libre",
    CANCELLED: "Séance annulée",
}


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
        """`free`, `cancelled`, or the state of the appointment that holds the slot; a group session is `free`
        while it has a seat left."""
        if self.is_group and self.slot.state is SlotState.OPEN and self.seats_left:
            return FREE
        if self.appointment is not None:
            return self.appointment.state.value
        return CANCELLED if self.slot.state is SlotState.CANCELLED else FREE

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


@dataclass
class WeekBoard:
    """The week of a CPTS: for each program, for each local day, its slots in time order."""

    days: list[dt.date]
    programs: list[SessionProgram]
    cells: dict[tuple[int, dt.date], list[SlotView]] = field(default_factory=dict)

    def cell(self, program_id: int, day: dt.date) -> list[SlotView]:
        return self.cells.get((program_id, day), [])

    @property
    def appointments(self) -> list[Appointment]:
        return [appointment for views in self.cells.values() for view in views for appointment in view.participants]


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


def week_board(session: Session, cpts_id: int, days: list[dt.date], start: dt.datetime, end: dt.datetime, *, zone):
    """The CPTS's programs (active ones, and others with slots that week) and their slots in [start, end)."""
    programs = list(
        session.scalars(
            select(SessionProgram)
            .options(joinedload(SessionProgram.performer))
            .where(SessionProgram.cpts_id == cpts_id)
            .order_by(SessionProgram.name, SessionProgram.id)
        )
    )
    slots = list(
        session.scalars(_slots_query([p.id for p in programs], start, end).order_by(Slot.starts_at, Slot.id))
        if programs
        else []
    )
    board = WeekBoard(days=days, programs=[])
    for view in views_of(session, slots):
        day = view.slot.starts_at.astimezone(zone).date()
        board.cells.setdefault((view.slot.program_id, day), []).append(view)
    shown = {program_id for program_id, _day in board.cells}
    board.programs = [p for p in programs if p.is_active or p.id in shown]
    return board


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
