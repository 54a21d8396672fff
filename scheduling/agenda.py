"""Local days and weeks as UTC ranges, and what falls in them."""

import datetime as dt
import functools
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Select, and_, bindparam, exists, or_, select
from sqlalchemy.orm import Session

from hub.db import UTCDateTime, read_rows
from hub.models import (
    Appointment,
    AppointmentKind,
    AppointmentState,
    Patient,
    PlaceKind,
    Referral,
    Resource,
    SessionProgram,
    Slot,
)
from hub.models.patient import patient_display_name
from hub.models.scheduling import telesoin_act_label


def day_bounds(day: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """[local midnight, next local midnight) in UTC: 23 h on the March change, 25 h in October."""
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def week_bounds(day: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    monday = day - dt.timedelta(days=day.weekday())
    return day_bounds(monday, zone)[0], day_bounds(monday + dt.timedelta(days=6), zone)[1]


@dataclass(frozen=True, slots=True)
class AgendaEntry:
    """An appointment of « Mon agenda », read as a plain row: what the agenda shows of it."""

    id: int
    state: AppointmentState
    kind: AppointmentKind
    performer_id: int
    accompanying_id: int | None
    starts_at: dt.datetime
    ends_at: dt.datetime
    accompaniment_starts_at: dt.datetime | None
    accompaniment_ends_at: dt.datetime | None
    patient_name: str
    telesoin_act_label: str | None
    place_kind: PlaceKind
    room_name: str | None
    kit_name: str | None
    slot_id: int | None
    capacity: int | None  # its slot's program's, when it has a slot
    has_letter: bool  # a referral's frozen letter is a document of it

    @property
    def is_group(self) -> bool:
        return self.capacity is not None and self.capacity > 1


def professional_agenda(
    session: Session, professional_id: int, start: dt.datetime, end: dt.datetime
) -> list[AgendaEntry]:
    """The appointments a professional performs or accompanies that start in [start, end), in time order, with
    what their agenda shows: one statement, read as plain rows (the ORM's loading of the appointments with their
    patients, slots, programs, rooms and kits was half of the page)."""
    rows = read_rows(session, _agenda_statement(), {"professional_id": professional_id, "start": start, "end": end})
    return [
        AgendaEntry(
            id=row.id,
            state=row.state,
            kind=row.kind,
            performer_id=row.performer_id,
            accompanying_id=row.accompanying_id,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            accompaniment_starts_at=row.accompaniment_starts_at,
            accompaniment_ends_at=row.accompaniment_ends_at,
            patient_name=patient_display_name(
                row.used_last_name, row.birth_name, row.used_first_name, row.first_birth_given_name
            ),
            telesoin_act_label=telesoin_act_label(row.telesoin_act),
            place_kind=row.place_kind,
            room_name=row.room_name,
            kit_name=row.kit_name,
            slot_id=row.slot_id,
            capacity=row.capacity,
            has_letter=row.has_letter,
        )
        for row in rows
    ]


@functools.cache
def _agenda_statement() -> Select:
    """professional_agenda's statement, built once with the professional and the bounds as parameters."""
    appointment, patient = Appointment.__table__.c, Patient.__table__
    slot, program = Slot.__table__, SessionProgram.__table__
    room, kit = Resource.__table__.alias("room"), Resource.__table__.alias("kit")
    professional_id = bindparam("professional_id", type_=Integer)
    letter = exists().where(Referral.appointment_id == appointment.id, Referral.letter_sha256.is_not(None))
    return (
        select(
            appointment.id,
            appointment.state,
            appointment.kind,
            appointment.performer_id,
            appointment.accompanying_id,
            appointment.starts_at,
            appointment.ends_at,
            appointment.accompaniment_starts_at,
            appointment.accompaniment_ends_at,
            patient.c.used_last_name,
            patient.c.birth_name,
            patient.c.used_first_name,
            patient.c.first_birth_given_name,
            appointment.telesoin_act,
            appointment.place_kind,
            room.c.name.label("room_name"),
            kit.c.name.label("kit_name"),
            appointment.slot_id,
            program.c.capacity,
            letter.label("has_letter"),
        )
        .select_from(Appointment.__table__)
        .join(patient, patient.c.id == appointment.patient_id)
        .outerjoin(slot, slot.c.id == appointment.slot_id)
        .outerjoin(program, program.c.id == slot.c.program_id)
        .outerjoin(room, room.c.id == appointment.room_id)
        .outerjoin(kit, kit.c.id == appointment.kit_id)
        .where(
            or_(appointment.performer_id == professional_id, appointment.accompanying_id == professional_id),
            and_(
                appointment.starts_at >= bindparam("start", type_=UTCDateTime),
                appointment.starts_at < bindparam("end", type_=UTCDateTime),
            ),
        )
        .order_by(appointment.starts_at, appointment.id)
    )
