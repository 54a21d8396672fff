"""What happened in a session: the rituals of a kiné's télésoin session, the session's incidents, and the
coordination's list of the CPTS's incidents (the EIG first)."""

from flask_login import current_user

from hub import audit
from hub.api import blueprint, created, load_json, page_of, pagination
from hub.auth.permissions import Permission
from hub.auth.policies import appointment_for
from hub.errors import RuleViolation
from hub.http.access import access
from hub.http.request import db
from hub.schemas.sessions import IncidentIn, IncidentOut, RitualsIn, RitualsOut
from workflows import incidents, rituals


@blueprint.get("/appointments/<int:appointment_id>/rituals")
@access(Permission.APPOINTMENTS_READ)
def get_rituals(appointment_id: int):
    appointment = appointment_for(db(), current_user, appointment_id, "read_session")
    if not rituals.applies_to(appointment):
        raise RuleViolation(rituals.NOT_KINE_TELESOIN)
    audit.record(db(), actor=current_user, action="appointment.rituals_read", target=appointment)
    return RitualsOut().dump(rituals.recorded(appointment))


@blueprint.put("/appointments/<int:appointment_id>/rituals")
@access(Permission.VISITS_RESPOND)
def record_rituals(appointment_id: int):
    appointment = appointment_for(db(), current_user, appointment_id, "record_rituals")
    data = load_json(RitualsIn())
    return RitualsOut().dump(rituals.record(db(), current_user, appointment, data))


@blueprint.get("/appointments/<int:appointment_id>/incidents")
@access(Permission.APPOINTMENTS_READ)
def list_session_incidents(appointment_id: int):
    appointment = appointment_for(db(), current_user, appointment_id, "read_session")
    page, per_page = pagination()
    items, total = incidents.incidents_page(
        db(), cpts_id=appointment.cpts_id, appointment_id=appointment.id, page=page, per_page=per_page
    )
    audit.record(db(), actor=current_user, action="incident.list", target=appointment, details={"count": len(items)})
    return page_of(IncidentOut(), items, total, page, per_page)


@blueprint.post("/appointments/<int:appointment_id>/incidents")
@access(Permission.VISITS_RESPOND)
def record_incident(appointment_id: int):
    appointment = appointment_for(db(), current_user, appointment_id, "record_incident")
    data = load_json(IncidentIn())
    incident = incidents.record_incident(db(), current_user, appointment, **data)
    return created(IncidentOut().dump(incident), "api.list_session_incidents", appointment_id=appointment.id)


@blueprint.get("/incidents")
@access(Permission.INCIDENTS_READ_CPTS)
def list_incidents():
    page, per_page = pagination()
    items, total = incidents.incidents_page(db(), cpts_id=current_user.cpts_id, page=page, per_page=per_page)
    audit.record(db(), actor=current_user, action="incident.list", details={"count": len(items)})
    return page_of(IncidentOut(), items, total, page, per_page)
