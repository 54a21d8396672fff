"""A patient booked into a series of one program's sessions, or into a pathway's steps: checked occurrence by
occurrence before anything is saved (`/check`), then booked, all or nothing or the free ones only."""

from flask_login import current_user

from hub.api import blueprint, load_json
from hub.auth.guards import patient_for
from hub.auth.permissions import Permission
from hub.auth.policies import pathway_for
from hub.errors import NotFound
from hub.http.access import access
from hub.http.request import db, territory_zone
from hub.models import Slot
from hub.schemas.scheduling import (
    NoBodyIn,
    PathwayBookedOut,
    PathwayPlanOut,
    PathwayScheduleIn,
    SeriesBookedOut,
    SeriesBookIn,
    SeriesCheckOut,
    SeriesIn,
)
from workflows import series_booking


@blueprint.post("/series-bookings/check")
@access(Permission.APPOINTMENTS_BOOK)
def check_series_booking():
    """Dry run: each occurrence with `ok` and what stops it; nothing is saved."""
    series = _series(load_json(SeriesIn()), action="appointment.series_check")
    planned = series_booking.check(db(), series)
    return SeriesCheckOut().dump(summary(planned, series.first_slot.program.zone))


@blueprint.post("/series-bookings")
@access(Permission.APPOINTMENTS_BOOK)
def book_series():
    """Book the series: `all_or_nothing` (the default) answers 409 naming the conflicting occurrences and saves
    nothing; false books the free ones and lists those left out."""
    data = load_json(SeriesBookIn())
    series = _series(data, action="appointment.book")
    booked, left_out = series_booking.book(db(), current_user, series, all_or_nothing=data["all_or_nothing"])
    zone = series.first_slot.program.zone
    body = {"booked": booked, "left_out": [series_booking.as_dict(o, zone) for o in left_out]}
    return SeriesBookedOut().dump(body), 201


def summary(planned: list[series_booking.Occurrence], zone: str) -> dict:
    return {
        "occurrences": [series_booking.as_dict(o, zone) for o in planned],
        "free": sum(o.ok for o in planned),
        "conflicting": sum(not o.ok for o in planned),
    }


def _series(data: dict, *, action: str) -> series_booking.Series:
    patient = patient_for(db(), current_user, data["patient_id"], action=action, write=True)
    slot = db().get(Slot, data["slot_id"])
    if slot is None or slot.program.cpts_id != current_user.cpts_id:
        raise NotFound("Créneau introuvable.")
    return series_booking.Series.asked(db(), first_slot=slot, patient=patient, data=data)


@blueprint.post("/pathways/<int:pathway_id>/schedule/check")
@access(Permission.APPOINTMENTS_BOOK)
def check_pathway_schedule(pathway_id: int):
    """Dry run: each planned step that goes into the planner with its proposed slot, `ok` and what stops it."""
    pathway = pathway_for(db(), current_user, pathway_id, action="pathway.schedule_check")
    load_json(NoBodyIn())
    plans = series_booking.check_pathway(db(), pathway)
    return PathwayPlanOut().dump(plan_summary(plans, territory_zone()))


@blueprint.post("/pathways/<int:pathway_id>/schedule")
@access(Permission.APPOINTMENTS_BOOK)
def schedule_pathway(pathway_id: int):
    """Book the steps into their proposed slots: `all_or_nothing` (the default) answers 409 naming the conflicting
    steps and saves nothing; false books the free ones and lists those left out."""
    pathway = pathway_for(db(), current_user, pathway_id, action="pathway.step.book")
    data = load_json(PathwayScheduleIn())
    zone = territory_zone()
    booked, left_out = series_booking.book_pathway(
        db(), current_user, pathway, all_or_nothing=data["all_or_nothing"], zone=zone
    )
    body = {"booked": booked, "left_out": [series_booking.step_as_dict(p, zone) for p in left_out]}
    return PathwayBookedOut().dump(body), 201


def plan_summary(plans: list[series_booking.StepPlan], zone: str) -> dict:
    return {
        "steps": [series_booking.step_as_dict(p, zone) for p in plans],
        "free": sum(p.ok for p in plans),
        "conflicting": sum(not p.ok for p in plans),
    }
