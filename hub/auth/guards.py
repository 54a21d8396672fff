"""Load an object for a user, or refuse as if it did not exist (404, no IDOR oracle) and audit the refusal."""

from collections.abc import Sequence

from sqlalchemy import Row
from sqlalchemy.orm import Session

from hub import audit
from hub.auth.policies import visible_patient, visible_patient_record
from hub.errors import NotFound
from hub.models import Consent, Patient


def patient_for(session: Session, user, patient_id: int, *, action: str = "patient.read", write: bool = False):
    """The patient if the user may see it (or edit it, with `write`); a read is audited here, a write by
    the service that makes it."""
    patient = visible_patient(session, user, patient_id, write=write)
    if patient is None:
        raise NotFound("Patient introuvable.", audit_action=action, audit_target=("patients", patient_id))
    if not write:
        audit.record(session, actor=user, action=action, target=patient)
    return patient


def patient_record_for(
    session: Session, user, patient_id: int, *, preloaded: Sequence[Row] | None = None
) -> Sequence[Row]:
    """`patient_for` (read) as the rows of `policies.visible_patient_record`, audited the same way."""
    rows = visible_patient_record(session, user, patient_id, preloaded=preloaded)
    if rows is None:
        raise NotFound("Patient introuvable.", audit_action="patient.read", audit_target=("patients", patient_id))
    audit.record(session, actor=user, action="patient.read", target=("patients", patient_id))
    return rows


def consent_for(session: Session, user, patient: Patient, consent_id: int) -> Consent:
    consent = session.get(Consent, consent_id)
    if consent is None or consent.patient_id != patient.id:
        raise NotFound("Consentement introuvable.", audit_action="consent.write", audit_target=("consents", consent_id))
    return consent
