"""A patient booked into a series of one program's sessions: checked occurrence by occurrence before anything
is saved (`/check`), then booked, all or nothing or the free ones only."""

from flask_login import current_user

from hub.api import blueprint, load_json
from hub.auth.guards import patient_for
from hub.auth.permissions import Permission
from hub.errors import NotFound
from hub.http.access import access
from hub.http.request import db
from hub.models import Slot
from hub.schemas.scheduling import SeriesBookedOut, SeriesBookIn, SeriesCheckOut, SeriesIn
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
