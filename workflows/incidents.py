"""Incidents of a session: a technical problem (connexion perdue, bascule au téléphone, panne de matériel) or an
adverse event, EI or EIG (seed 000: « gestion des EI/EIG » ; seed 002: analyse des événements indésirables),
recorded by the performer or the accompanying professional during or after the session. An EIG reaches the
coordinators of the CPTS at once, by an e-mail that says only that one was declared; the coordination lists
every incident of the CPTS, the EIG first."""

import datetime as dt

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, joinedload

from connectors import outbox
from hub import audit
from hub.db import utcnow
from hub.errors import RuleViolation, ValidationFailed
from hub.models import (
    TECHNICAL_INCIDENTS,
    Actor,
    Appointment,
    AppointmentKind,
    AppointmentState,
    IncidentKind,
    IncidentSeverity,
    SessionIncident,
)
from hub.services import directory

# Once the patient is there, and after: a session that never began has no incident of its own.
RECORDABLE = frozenset({AppointmentState.CHECKED_IN, AppointmentState.DONE, AppointmentState.DEGRADED})
MAX_DESCRIPTION = 2000
EIG_ALERT = "serious_adverse_event"


def recordable(appointment: Appointment) -> bool:
    """Whether an incident may be declared on the session now (during it or after it)."""
    return appointment.state in RECORDABLE


def record_incident(
    session: Session,
    actor: Actor,
    appointment: Appointment,
    *,
    kind: IncidentKind,
    description: str,
    severity: IncidentSeverity | None = None,
    now: dt.datetime | None = None,
) -> SessionIncident:
    """Record an incident of the session by one who took part in it (the caller checked the relation). An EIG is
    grave; an EI said grave is an EIG and is refused as an EI. An EIG queues one e-mail to each coordinator of the
    CPTS, in this transaction, and never twice for one incident."""
    if not recordable(appointment):
        raise RuleViolation("Un incident se déclare pendant ou après la séance, une fois le patient accueilli.")
    if kind in TECHNICAL_INCIDENTS and appointment.kind is AppointmentKind.IN_PERSON:
        raise RuleViolation("Un incident technique ne concerne qu'une séance à distance.")
    description = (description or "").strip()
    errors = {}
    if not description:
        errors["description"] = "Décrivez ce qui s'est passé."
    elif len(description) > MAX_DESCRIPTION:
        errors["description"] = f"Au plus {MAX_DESCRIPTION} caractères."
    severity, severity_error = _severity(kind, severity)
    errors |= severity_error
    if errors:
        raise ValidationFailed(errors)
    assert severity is not None  # no error: _severity gave one
    incident = SessionIncident(
        cpts_id=appointment.cpts_id,
        appointment_id=appointment.id,
        kind=kind,
        severity=severity,
        description=description,
        recorded_by_user_id=actor.id,
        recorded_at=now or utcnow(),
    )
    session.add(incident)
    session.flush()  # the audit line and the alerts name the new id
    details = {"appointment_id": appointment.id, "kind": kind.value, "severity": severity.value}
    audit.record(
        session, actor=actor, action="incident.record", target=incident, cpts_id=incident.cpts_id, details=details
    )
    if incident.is_serious:
        _alert_coordinators(session, incident)
    return incident


def _severity(kind: IncidentKind, severity: IncidentSeverity | None) -> tuple[IncidentSeverity | None, dict]:
    if kind is IncidentKind.SERIOUS_ADVERSE_EVENT:
        if severity not in (None, IncidentSeverity.SEVERE):
            return None, {"severity": "Un événement indésirable grave (EIG) est, par définition, de gravité « grave »."}
        return IncidentSeverity.SEVERE, {}
    if severity is None:
        return None, {"severity": "Indiquez la gravité de l'incident."}
    if kind is IncidentKind.ADVERSE_EVENT and severity is IncidentSeverity.SEVERE:
        return None, {"kind": "Un événement indésirable grave se déclare comme « Événement indésirable grave (EIG) »."}
    return severity, {}


def _alert_coordinators(session: Session, incident: SessionIncident) -> None:
    coordinators = directory.coordinators_by_cpts(session, [incident.cpts_id]).get(incident.cpts_id, [])
    for coordinator in coordinators:
        outbox.email_professional(
            session,
            coordinator,
            kind=EIG_ALERT,
            payload={"incident_id": incident.id},
            key=f"{incident.id}:{coordinator.id}",
            cpts_id=incident.cpts_id,
        )


# --- reading ------------------------------------------------------------------------------------------------


def _listed(where, *, page: int, per_page: int):
    return (
        select(SessionIncident)
        .where(where)
        .options(
            joinedload(SessionIncident.appointment).joinedload(Appointment.patient),
            joinedload(SessionIncident.appointment).joinedload(Appointment.performer),
            joinedload(SessionIncident.recorded_by),
        )
        # The EIG first: what the coordination must act on at once; then the newest.
        .order_by(
            case((SessionIncident.kind == IncidentKind.SERIOUS_ADVERSE_EVENT, 0), else_=1),
            SessionIncident.recorded_at.desc(),
            SessionIncident.id.desc(),
        )
        .limit(per_page)
        .offset((page - 1) * per_page)
    )


def incidents_page(
    session: Session, *, cpts_id: int, appointment_id: int | None = None, page: int = 1, per_page: int = 50
) -> tuple[list[SessionIncident], int]:
    """A page of the incidents of the CPTS (or of one of its sessions), the EIG first, then the newest, with their
    session, patient, performer and author: two queries whatever the page size. Reads only: the caller has
    checked access and audits the read."""
    where = SessionIncident.cpts_id == cpts_id
    if appointment_id is not None:
        where = where & (SessionIncident.appointment_id == appointment_id)
    total = session.scalar(select(func.count()).select_from(SessionIncident).where(where)) or 0
    return list(session.scalars(_listed(where, page=page, per_page=per_page))), total
