"""What happened in a session, told by those who took part in it: the six rituals of a kiné's télésoin session
(« Rituels de la séance »), the session's incidents (« Incidents de la séance »), and the coordination's list of
the CPTS's incidents, the EIG first (« Incidents des séances »)."""

from flask import Blueprint, render_template, url_for
from flask_login import current_user

from hub import audit
from hub.auth.permissions import Permission
from hub.auth.policies import appointment_for, can_act_on_appointment
from hub.http.access import access
from hub.http.inputs import page_number
from hub.http.request import db
from hub.models import (
    INCIDENT_KIND_LABELS,
    INCIDENT_SEVERITY_LABELS,
    MAX_PROMS,
    RITUAL_FIELD_LABELS,
    RITUALS,
    Appointment,
)
from hub.schemas.sessions import IncidentForm, RitualsForm, form_values
from hub.web.pages import appointment_action, page_size
from workflows import incidents, rituals

bp = Blueprint("sessions", __name__)

RITUAL_TEXTS = ("stop_criteria", "feedback_notes", "plan")  # written; the other fields are ticked


@bp.context_processor
def labels():
    return {
        "RITUALS": RITUALS,
        "RITUAL_FIELD_LABELS": RITUAL_FIELD_LABELS,
        "RITUAL_TEXTS": RITUAL_TEXTS,
        "MAX_PROMS": MAX_PROMS,
        "INCIDENT_KIND_LABELS": INCIDENT_KIND_LABELS,
        "INCIDENT_SEVERITY_LABELS": INCIDENT_SEVERITY_LABELS,
    }


@bp.app_context_processor
def session_links():
    """What the pages of the sessions (« Mes visites », « Ma séance », « Mon agenda ») link to, and the rituals a
    report carries (its form and its page)."""
    return {
        "has_rituals": lambda appointment: rituals.applies_to(appointment),
        "incident_recordable": incidents.recordable,
        "ritual_sections": rituals.report_sections,
    }


# --- the rituals ---------------------------------------------------------------------------------------------


@bp.get("/visits/<int:appointment_id>/rituals")
@access(Permission.VISITS_RESPOND)
def rituals_form(appointment_id: int):
    appointment = appointment_for(db(), current_user, appointment_id, "record_rituals")
    audit.record(db(), actor=current_user, action="appointment.rituals_read", target=appointment)
    return _rituals_page(appointment, form_values(rituals.recorded(appointment).record))


@bp.post("/visits/<int:appointment_id>/rituals")
@access(Permission.VISITS_RESPOND)
def save_rituals(appointment_id: int):
    def perform(appointment, data):
        missing = rituals.record(db(), current_user, appointment, data).missing
        if missing:
            return "Rituels enregistrés. Pour terminer la séance, il manque encore " + " ; ".join(missing) + "."
        return "Rituels enregistrés : les six sont faits, vous pouvez terminer la séance depuis « Mes visites »."

    def show_again(appointment, _verb, values, refused):
        return _rituals_page(appointment, values, errors=refused.errors, problem=refused.detail, status=refused.status)

    done = url_for("sessions.rituals_form", appointment_id=appointment_id)
    return appointment_action(
        appointment_id,
        "record_rituals",
        RitualsForm(),
        perform,
        show_again=show_again,
        done_url=done,
        read="appointment.rituals_read",
    )


def _rituals_page(appointment: Appointment, values: dict, *, errors=None, problem=None, status: int = 200):
    return render_template(
        "sessions/rituals.html",
        appointment=appointment,
        applies=rituals.applies_to(appointment),
        state=rituals.recorded(appointment),
        values=values,
        errors=errors or {},
        problem=problem,
    ), status


# --- the incidents -------------------------------------------------------------------------------------------


@bp.get("/visits/<int:appointment_id>/incidents")
@access(Permission.APPOINTMENTS_READ)
def session_incidents(appointment_id: int):
    return _incidents_page(appointment_for(db(), current_user, appointment_id, "read_session"))


@bp.post("/visits/<int:appointment_id>/incidents")
@access(Permission.VISITS_RESPOND)
def record_incident(appointment_id: int):
    def perform(appointment, data):
        incident = incidents.record_incident(db(), current_user, appointment, **data)
        if incident.is_serious:
            return "Événement indésirable grave déclaré : la coordination de la CPTS est alertée."
        return "Incident déclaré."

    def show_again(appointment, _verb, values, refused):  # the page audits its own read
        return _incidents_page(
            appointment, values=values, errors=refused.errors, problem=refused.detail, status=refused.status
        )

    done = url_for("sessions.session_incidents", appointment_id=appointment_id)
    return appointment_action(
        appointment_id, "record_incident", IncidentForm(), perform, show_again=show_again, done_url=done
    )


def _incidents_page(appointment: Appointment, *, values=None, errors=None, problem=None, status: int = 200):
    items, _total = incidents.incidents_page(
        db(), cpts_id=appointment.cpts_id, appointment_id=appointment.id, per_page=200
    )
    audit.record(db(), actor=current_user, action="incident.list", target=appointment, details={"count": len(items)})
    may_record = incidents.recordable(appointment) and can_act_on_appointment(
        db(), current_user, appointment, "record_incident"
    )
    return render_template(
        "sessions/incidents.html",
        appointment=appointment,
        items=items,
        may_record=may_record,
        values=values or {},
        errors=errors or {},
        problem=problem,
    ), status


@bp.get("/incidents")
@access(Permission.INCIDENTS_READ_CPTS)
def cpts_incidents():
    page, per_page = page_number(), page_size()
    items, total = incidents.incidents_page(db(), cpts_id=current_user.cpts_id, page=page, per_page=per_page)
    audit.record(db(), actor=current_user, action="incident.list", details={"count": len(items)})
    return render_template("sessions/cpts_incidents.html", items=items, total=total, page=page, per_page=per_page)
