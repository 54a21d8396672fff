"""« Mon agenda »: a professional's own appointments, by local day or week (DST days are 23 or 25 hours)."""

import datetime as dt

from flask import Blueprint, render_template
from flask_login import current_user

from hub import audit
from hub.auth.permissions import Permission
from hub.db import utcnow
from hub.http.access import access
from hub.http.request import db
from hub.models import APPOINTMENT_KIND_LABELS, APPOINTMENT_STATE_LABELS, PLACE_KIND_LABELS, AppointmentState
from hub.schemas.scheduling import AgendaArgs
from hub.web.pages import load_query, row_url
from hub.web.planning import zone
from scheduling.agenda import AgendaEntry, day_bounds, professional_agenda, week_bounds

bp = Blueprint("agenda", __name__, url_prefix="/agenda")

NOT_A_PROFESSIONAL = "Votre compte n'est lié à aucune fiche de professionnel : vous n'avez pas d'agenda."


@bp.get("")
@access(Permission.APPOINTMENTS_READ)
def index():
    filters, values, errors = load_query(AgendaArgs())
    day = filters.get("day") or utcnow().astimezone(zone()).date()
    view = filters.get("view", "day")
    if view == "week":
        day -= dt.timedelta(days=day.weekday())
        start, end = week_bounds(day, zone().key)
        days, step = [day + dt.timedelta(days=n) for n in range(7)], dt.timedelta(days=7)
    else:
        start, end = day_bounds(day, zone().key)
        days, step = [day], dt.timedelta(days=1)
    by_day: dict[dt.date, list[AgendaEntry]] = {d: [] for d in days}
    professional_id = current_user.professional_id
    if professional_id is not None:
        for appointment in professional_agenda(db(), professional_id, start, end):
            by_day[appointment.starts_at.astimezone(zone()).date()].append(appointment)
        shown = sum(len(items) for items in by_day.values())
        audit.record(db(), actor=current_user, action="agenda.read", details={"appointments": shown})
    groups, folded = _group_sessions(by_day, professional_id)
    context = {
        "day": day,
        "view": view,
        "by_day": by_day,
        "step": step,
        "professional_id": professional_id,
        "groups": groups,
        "folded": folded,
        "visit_url": row_url("visits.show", "appointment_id"),
        "letter_url": row_url("referrals.appointment_letter", "appointment_id"),
        "incidents_url": row_url("sessions.session_incidents", "appointment_id"),
    }
    return render_template(
        "agenda/index.html",
        values=values,
        errors=errors,
        explanation=NOT_A_PROFESSIONAL,
        KIND_LABELS=APPOINTMENT_KIND_LABELS,
        PLACE_KIND_LABELS=PLACE_KIND_LABELS,
        APPOINTMENT_STATE_LABELS=APPOINTMENT_STATE_LABELS,
        CANCELLED=AppointmentState.CANCELLED,
        **context,
    )


def _group_sessions(by_day: dict, professional_id: int | None) -> tuple[dict[int, list[AgendaEntry]], set[int]]:
    """A group session the professional performs reads as one row: its first participant's appointment carries
    the list (`groups`, by that appointment's id), the others are folded into it (`folded`)."""
    groups: dict[int, list[AgendaEntry]] = {}
    folded: set[int] = set()
    first_of_slot: dict[int, int] = {}
    for appointment in (a for items in by_day.values() for a in items):
        if appointment.slot_id is None or not appointment.is_group or appointment.performer_id != professional_id:
            continue
        first = first_of_slot.setdefault(appointment.slot_id, appointment.id)
        groups.setdefault(first, []).append(appointment)
        if first != appointment.id:
            folded.add(appointment.id)
    return groups, folded
