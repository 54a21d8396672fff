"""What an accompanying professional (or a télésoin's performer) needs for a visit and a round: where to go, whom
to call, what the session is for (the referral's letter, attachments and needs), what to bring, the HAS checklist
as saved; a day's round in time order; the visits done, which stay findable."""

import datetime as dt
import json
from dataclasses import dataclass
from urllib.parse import quote_plus

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from hub.models import Appointment, AppointmentState, Referral, Slot
from workflows.appointments import HOME_PLACES

# Visits that are over, one way or another: the history keeps them.
FINISHED = (AppointmentState.DONE, AppointmentState.DEGRADED, AppointmentState.NO_SHOW, AppointmentState.POSTPONED)
# Visits that make up a round: answered or under way, or over (the day sheet is also the day's record).
IN_A_ROUND = (AppointmentState.CONFIRMED, AppointmentState.CHECKED_IN, *FINISHED)
HISTORY_SIZE = 50
MAP_SEARCH = "https://www.openstreetmap.org/search?query="


@dataclass(frozen=True)
class VisitSheet:
    appointment: Appointment
    address: str | None  # where to go: the patient's home, or the dedicated place's address
    referral: Referral | None  # the letter, attachments and needs of the referral the session was booked for
    needs: list[str]
    checklist: dict[str, bool] | None  # as saved before the session, None while not saved

    @property
    def map_url(self) -> str | None:
        """A search on OpenStreetMap, opened by the phone's browser or map application: nothing is embedded."""
        return MAP_SEARCH + quote_plus(self.address) if self.address else None


def address_of(appointment: Appointment) -> str | None:
    if appointment.place_kind in HOME_PLACES:
        return appointment.patient.address
    return appointment.room.address if appointment.room is not None else None


def sheet(session: Session, appointment: Appointment) -> VisitSheet:
    return _sheet(appointment, _referrals_of(session, [appointment.id]).get(appointment.id))


def _sheet(appointment: Appointment, referral: Referral | None) -> VisitSheet:
    return VisitSheet(
        appointment=appointment,
        address=address_of(appointment),
        referral=referral,
        needs=json.loads(referral.needs or "[]") if referral is not None else [],
        checklist=json.loads(appointment.checklist) if appointment.checklist_saved_at is not None else None,
    )


def _referrals_of(session: Session, appointment_ids: list[int]) -> dict[int, Referral]:
    """The referrals the appointments were booked for (its letter frozen or not), by appointment id (one query)."""
    if not appointment_ids:
        return {}
    found = session.scalars(
        select(Referral)
        .where(Referral.appointment_id.in_(appointment_ids))
        .options(selectinload(Referral.attachments), joinedload(Referral.author))
    )
    return {referral.appointment_id: referral for referral in found if referral.appointment_id is not None}


def _mine(professional_id: int):
    return or_(Appointment.performer_id == professional_id, Appointment.accompanying_id == professional_id)


def _with_details(query):
    return query.options(
        joinedload(Appointment.patient),
        joinedload(Appointment.performer),
        joinedload(Appointment.slot).joinedload(Slot.program),
        joinedload(Appointment.room),
        joinedload(Appointment.kit),
    )


def round_of(session: Session, professional_id: int, start: dt.datetime, end: dt.datetime) -> list[VisitSheet]:
    """The professional's visits starting in [start, end), confirmed or later, in time order (of their presence,
    which is what the round follows), each with where to go."""
    rows = session.scalars(
        _with_details(
            select(Appointment).where(
                _mine(professional_id),
                Appointment.state.in_(IN_A_ROUND),
                Appointment.starts_at >= start,
                Appointment.starts_at < end,
            )
        )
    ).all()
    ordered = sorted(rows, key=lambda a: (a.accompaniment_window[0], a.id))
    found = _referrals_of(session, [a.id for a in ordered])
    return [_sheet(a, found.get(a.id)) for a in ordered]


def done_visits(session: Session, professional_id: int, *, size: int = HISTORY_SIZE) -> list[Appointment]:
    """The professional's finished visits, the latest first, `size` at most."""
    query = (
        select(Appointment)
        .where(_mine(professional_id), Appointment.state.in_(FINISHED))
        .order_by(Appointment.starts_at.desc(), Appointment.id.desc())
        .limit(size)
    )
    return list(session.scalars(_with_details(query)))
