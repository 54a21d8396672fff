"""Who was there at a session (« Présences »: the patient, the accompanying professional, the performer), from the
IDEL's visit page, the specialist's « Ma séance » and the coordination's appointment page; the session's video
link (« Rejoindre la visio ») for its participants, the patient's link sent through the outbox; and the patient's
public link `/visio/<token>`, which opens the room only around the session."""

from flask import Blueprint, flash, g, redirect, render_template, url_for
from flask_login import current_user

from hub import audit
from hub.auth.permissions import Permission
from hub.auth.policies import appointment_for, can_act_on_appointment
from hub.db import utcnow
from hub.errors import HubError
from hub.http.access import PUBLIC, access
from hub.http.request import db
from hub.models import Appointment, AppointmentState
from hub.schemas.attendance import AttendanceForm
from hub.schemas.scheduling import NoBodyForm
from hub.web.pages import appointment_action
from workflows import attendance, video

bp = Blueprint("attendance", __name__)


@bp.app_context_processor
def session_presence():
    """What the session pages show of attendance and video: the room as its participant sees it (None for anyone
    else), whether the program names a video tool, the answers recorded."""

    def video_access(appointment: Appointment):
        if not can_act_on_appointment(db(), current_user, appointment, "video"):
            return None
        return video.access_for_participant(db(), appointment, rooms=g.get("presence_rooms"))

    def attendance_shown(appointment: Appointment):
        if not can_act_on_appointment(db(), current_user, appointment, "read_attendance"):
            return None
        known = g.get("presence_attendances") or {}
        return known[appointment.id] if appointment.id in known else attendance.attendance_of(db(), appointment)

    return {
        "video_access": video_access,
        "video_sendable": lambda appointment: (
            video.sendable(db(), appointment, now=utcnow())
            and can_act_on_appointment(db(), current_user, appointment, "send_video_link")
        ),
        "attendance_of": attendance_shown,
        "may_read_attendance": lambda appointment: can_act_on_appointment(
            db(), current_user, appointment, "read_attendance"
        ),
        "attendance_recordable": lambda appointment: appointment.state in attendance.RECORDABLE,
        "attendance_started": lambda appointment: utcnow() >= appointment.starts_at,
        "may_record_attendance": lambda appointment: (
            appointment.state in attendance.RECORDABLE
            and can_act_on_appointment(db(), current_user, appointment, "attendance")
        ),
    }


def prefetch_presence(appointments: list[Appointment]) -> None:
    """For a page listing sessions with « Visio et présences » under each (« Ma séance »): their attendance and
    rooms read in two queries, whatever the number of rows (P6)."""
    ids = [appointment.id for appointment in appointments]
    g.presence_attendances = attendance.attendances_by_appointment(db(), ids)
    g.presence_rooms = video.rooms_by_appointment(db(), ids)
    # Their programs (their video tool), held for the request: the session's identity map holds rows weakly, and
    # each row's look-up would otherwise read its program again.
    g.presence_programs = video.programs_of(db(), appointments)


@bp.get("/visits/<int:appointment_id>/attendance")
@access(Permission.VISITS_RESPOND)
def attendance_form(appointment_id: int):
    appointment = appointment_for(db(), current_user, appointment_id, "attendance")
    audit.record(db(), actor=current_user, action="appointment.attendance_read", target=appointment)
    return _page(appointment, _recorded_values(appointment))


@bp.post("/visits/<int:appointment_id>/attendance")
@access(Permission.VISITS_RESPOND)
def record_attendance(appointment_id: int):
    def perform(appointment, data):
        attendance.record(db(), current_user, appointment, **data)
        return _recorded_message(appointment)

    def show_again(appointment, _verb, values, refused):
        return _page(appointment, values, errors=refused.errors, problem=refused.detail, status=refused.status)

    done = url_for("attendance.attendance_form", appointment_id=appointment_id)
    return appointment_action(
        appointment_id,
        "attendance",
        AttendanceForm(),
        perform,
        show_again=show_again,
        done_url=done,
        read="appointment.attendance_read",
    )


def _recorded_message(appointment: Appointment) -> str:
    if appointment.state is AppointmentState.POSTPONED:
        return (
            "Présences enregistrées : la séance est reportée ; le patient et l'accompagnant sont prévenus, "
            "la coordination la reprogramme."
        )
    if appointment.state is AppointmentState.NO_SHOW:
        return "Présences enregistrées : absence du patient notée."
    return "Présences enregistrées."


def _recorded_values(appointment: Appointment) -> dict:
    row = attendance.attendance_of(db(), appointment)
    if row is None:
        return {}
    answers = {
        "patient": row.is_patient_present,
        "accompanying": row.is_accompanying_present,
        "performer": row.is_performer_present,
    }
    return {key: ("1" if value else "0") for key, value in answers.items() if value is not None} | {
        "note": row.note or ""
    }


def _page(appointment: Appointment, values: dict, *, errors=None, problem=None, status: int = 200):
    return render_template(
        "sessions/attendance.html",
        appointment=appointment,
        recorded=attendance.attendance_of(db(), appointment),
        started=utcnow() >= appointment.starts_at,
        values=values,
        errors=errors or {},
        problem=problem,
    ), status


@bp.post("/visits/<int:appointment_id>/video-link")
@access(Permission.VISITS_RESPOND)
def send_video_link(appointment_id: int):
    """Send the patient their link (a new one); back to the page it was sent from."""

    def perform(appointment, _data):
        video.send_patient_link(db(), current_user, appointment)
        return "Lien de téléconsultation envoyé au patient (le précédent ne fonctionne plus)."

    back = _session_page(appointment_id)

    def show_again(_appointment, _verb, _values, refused):  # the reason on the page the button was on
        flash(refused.detail, "error")
        return redirect(back)

    return appointment_action(
        appointment_id, "send_video_link", NoBodyForm(), perform, show_again=show_again, done_url=back
    )


def _session_page(appointment_id: int) -> str:
    """A participant's visit page, or the coordination's appointment page."""
    row = db().get(Appointment, appointment_id)
    if row is not None and current_user.professional_id in (row.performer_id, row.accompanying_id):
        return url_for("visits.show", appointment_id=appointment_id)
    return url_for("planning.appointment", appointment_id=appointment_id)


@bp.get("/planning/to-reschedule")
@access(Permission.APPOINTMENTS_BOOK)
def to_reschedule():
    """« À reprogrammer »: the sessions an absence left to book again, each with its program's next free slot to
    book the same patient into in one click."""
    items = attendance.to_reschedule(db(), current_user.cpts_id, now=utcnow())
    audit.record(db(), actor=current_user, action="desk.to_reschedule", details={"appointments": len(items)})
    return render_template("sessions/to_reschedule.html", items=items)


# --- the patient's link ---------------------------------------------------------------------------------------


@bp.get("/visio/<token>")
@access(PUBLIC)
def open_video(token: str):
    """The patient's link: the video room within its window; a French page saying when otherwise."""
    try:
        url = video.open_patient_link(db(), token)
    except HubError as refusal:
        if refusal.audit_action:  # an unknown token: the error pages' 404, its refusal audited
            raise
        # A valid link outside its window: refused for now, said in French (not yet, or over).
        return render_template("sessions/video_closed.html", message=refusal.detail), 403
    return redirect(url, code=302)
