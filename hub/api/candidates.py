"""/api/v1/appointments/<id>/candidates: the IDELs who may take over a booked visit, ranked as the second round of
offers ranks them (workflows.idel_ranking), each with the reason of its rank — what the appointment's page shows
the coordinator before reassigning."""

from flask_login import current_user
from sqlalchemy import and_, bindparam, func

from hub import audit
from hub.api import blueprint
from hub.auth.permissions import Permission
from hub.auth.policies import appointment_row_for
from hub.db import utcnow
from hub.http.access import Preload, access, light_read, preloaded_row
from hub.http.request import db
from hub.models import Appointment, Patient, SessionProgram, Slot, User
from hub.schemas.referrals import candidates_out
from hub.services import accounts
from workflows import accompaniment

# What the access rule and the ranking read of the visit (accompaniment.BookedVisit), its patient's commune and its
# program's zone (the slot's program, as workflows.appointments.program_of reads it), as plain columns joined to the
# Bearer token's lookup: one round trip, as GET appointment's (hub.http.access.Preload). The appointment only in the
# caller's CPTS and for a usable token, one row per role; its `cpts_id` is the caller's, the appointment's by that
# join. An ORM appointment with its patient, slot and program cost a quarter of the request's CPU (issue 17, P7).
_READ_WITH_CALLER = (
    accounts.CALLER_OF_TOKEN.add_columns(
        Appointment.id,
        Appointment.kind,
        Appointment.patient_id,
        Appointment.performer_id,
        Appointment.accompanying_id,
        Appointment.place_kind,
        Appointment.starts_at,
        Appointment.ends_at,
        Appointment.accompaniment_starts_at,
        Appointment.accompaniment_ends_at,
        Patient.commune_insee.label("patient_commune"),
        SessionProgram.zone,
    )
    .outerjoin(
        Appointment,
        and_(Appointment.id == bindparam("appointment_id"), Appointment.cpts_id == User.cpts_id, accounts.TOKEN_USABLE),
    )
    .outerjoin(Patient, Patient.id == Appointment.patient_id)
    .outerjoin(Slot, Slot.id == Appointment.slot_id)
    .outerjoin(SessionProgram, SessionProgram.id == func.coalesce(Slot.program_id, Appointment.program_id))
)


@blueprint.get("/appointments/<int:appointment_id>/candidates")
@access(Permission.APPOINTMENTS_BOOK)
@light_read(preload=Preload(_READ_WITH_CALLER, lambda arguments: {"appointment_id": arguments["appointment_id"]}))
def appointment_candidates(appointment_id: int):
    user = current_user._get_current_object()
    found = preloaded_row()
    row = appointment_row_for(db(), user, appointment_id, found, "reassign")
    audit.record(db(), actor=user, action="appointment.candidates", target=("appointments", row.id))
    found_candidates = accompaniment.for_visit(db(), _booked_visit(row), now=utcnow())
    return candidates_out(row.id, found_candidates)


def _booked_visit(row) -> accompaniment.BookedVisit:
    return accompaniment.BookedVisit(
        id=row.id,
        cpts_id=row.cpts_id,
        patient_id=row.patient_id,
        kind=row.kind,
        place_kind=row.place_kind,
        accompanying_id=row.accompanying_id,
        accompaniment_window=Appointment.accompaniment_window.fget(row),  # type: ignore[attr-defined]
        patient_commune=row.patient_commune,
        zone=row.zone,
    )
