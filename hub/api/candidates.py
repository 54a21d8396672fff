"""/api/v1/appointments/<id>/candidates: the IDELs who may take over a booked visit, ranked as the second round of
offers ranks them (workflows.idel_ranking), each with the reason of its rank — what the appointment's page shows
the coordinator before reassigning."""

from flask_login import current_user
from sqlalchemy.orm import joinedload

from hub import audit
from hub.api import blueprint
from hub.auth.permissions import Permission
from hub.auth.policies import appointment_for
from hub.db import utcnow
from hub.http.access import access, light_read
from hub.http.request import db
from hub.models import Appointment, Slot
from hub.schemas.referrals import AppointmentCandidatesOut
from workflows import accompaniment

# What the ranking reads of the appointment: its patient (and their IDEL), its slot and program (the times held).
READ_WITH = [joinedload(Appointment.patient), joinedload(Appointment.slot).joinedload(Slot.program)]
# Made once: a schema with nested fields cost a fifth of a millisecond to make on every request; dumping keeps
# no state in it.
CANDIDATES_OUT = AppointmentCandidatesOut()


@blueprint.get("/appointments/<int:appointment_id>/candidates")
@access(Permission.APPOINTMENTS_BOOK)
@light_read
def appointment_candidates(appointment_id: int):
    appointment = appointment_for(db(), current_user, appointment_id, "reassign", load=READ_WITH)
    audit.record(db(), actor=current_user, action="appointment.candidates", target=appointment)
    found = accompaniment.for_appointment(db(), appointment, now=utcnow())
    return CANDIDATES_OUT.dump(
        {"appointment_id": appointment.id, "own_idel_note": found.own_note, "items": found.candidates}
    )
