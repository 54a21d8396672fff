"""Local days and weeks as UTC ranges, and what falls in them."""

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload

from hub.models import Appointment, Slot


def day_bounds(day: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """[local midnight, next local midnight) in UTC: 23 h on the March change, 25 h in October."""
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def week_bounds(day: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    monday = day - dt.timedelta(days=day.weekday())
    return day_bounds(monday, zone)[0], day_bounds(monday + dt.timedelta(days=6), zone)[1]


def professional_agenda(session: Session, professional_id: int, start: dt.datetime, end: dt.datetime):
    """The appointments a professional performs or accompanies that start in [start, end)."""
    return list(
        session.scalars(
            select(Appointment)
            .options(
                joinedload(Appointment.patient),
                joinedload(Appointment.room),
                joinedload(Appointment.kit),
                joinedload(Appointment.slot).joinedload(Slot.program),  # a group session reads as one row
            )
            .where(
                or_(Appointment.performer_id == professional_id, Appointment.accompanying_id == professional_id),
                Appointment.starts_at >= start,
                Appointment.starts_at < end,
            )
            .order_by(Appointment.starts_at, Appointment.id)
        )
    )
