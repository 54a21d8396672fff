"""Who was there at a session, and its video link: /api/v1/appointments/<id>/attendance and …/video."""

from flask import request
from flask_login import current_user

from hub import audit
from hub.api import blueprint, json_body, load_json
from hub.auth.permissions import Permission
from hub.auth.policies import appointment_for
from hub.http.access import access
from hub.http.request import db
from hub.models import Appointment, Attendance
from hub.schemas.attendance import AttendanceIn, AttendanceOut, VideoOut
from hub.schemas.base import load
from hub.schemas.scheduling import NoBodyIn
from workflows import attendance, video


def _attendance_body(appointment: Appointment, row: Attendance | None) -> dict:
    return AttendanceOut().dump(
        {
            "appointment_id": appointment.id,
            "state": appointment.state.value,
            "has_accompanying": appointment.accompanying_id is not None,
            "recorded": row is not None,
            "patient": row.is_patient_present if row else None,
            "accompanying": row.is_accompanying_present if row else None,
            "performer": row.is_performer_present if row else None,
            "note": row.note if row else None,
            "recorded_at": row.recorded_at if row else None,
        }
    )


@blueprint.get("/appointments/<int:appointment_id>/attendance")
@access(Permission.APPOINTMENTS_READ)
def get_attendance(appointment_id: int):
    appointment = appointment_for(db(), current_user, appointment_id, "read_attendance")
    audit.record(db(), actor=current_user, action="appointment.attendance_read", target=appointment)
    return _attendance_body(appointment, attendance.attendance_of(db(), appointment))


@blueprint.post("/appointments/<int:appointment_id>/attendance")
@access(Permission.VISITS_RESPOND)
def record_attendance(appointment_id: int):
    """Who was there, after the session's start: the patient, the accompanying professional, the performer."""
    appointment = appointment_for(db(), current_user, appointment_id, "attendance")
    data = load_json(AttendanceIn())
    row = attendance.record(db(), current_user, appointment, **data)
    return _attendance_body(appointment, row)


def _video_body(appointment: Appointment, access_: video.VideoAccess) -> dict:
    return VideoOut().dump(
        {
            "appointment_id": appointment.id,
            "status": access_.status,
            "opens_at": access_.opens_at,
            "closes_at": access_.closes_at,
            "url": access_.url,
            "patient_link_sent_at": access_.patient_link_sent_at,
        }
    )


@blueprint.get("/appointments/<int:appointment_id>/video")
@access(Permission.APPOINTMENTS_READ)
def get_video(appointment_id: int):
    """The room's address for the performer and the accompanying professional, only around the session."""
    appointment = appointment_for(db(), current_user, appointment_id, "video")
    audit.record(db(), actor=current_user, action="appointment.video_read", target=appointment)
    return _video_body(appointment, video.access_for_participant(db(), appointment))


@blueprint.post("/appointments/<int:appointment_id>/video/patient-link")
@access(Permission.VISITS_RESPOND)
def send_video_link(appointment_id: int):
    """Send the patient their link (a new one: the previous stops working)."""
    appointment = appointment_for(db(), current_user, appointment_id, "send_video_link")
    load(NoBodyIn(), json_body() if request.get_data() else {})
    return _video_body(appointment, video.send_patient_link(db(), current_user, appointment))
