"""The patient's record as its page shows it: identity, consents and care team (hub.services.identity), and
the section each workflow adds, each built here by name."""

from sqlalchemy.orm import Session

from hub.models import Patient
from hub.services.identity import PatientRecord
from hub.services.identity import patient_record as identity_record
from workflows import appointments, pathways


def patient_record(session: Session, patient: Patient, *, zone: str) -> PatientRecord:
    """Reads only: the caller has checked access and audited the read. Days are those of `zone`."""
    sections = {
        "pathways": pathways.record_section(session, patient, zone=zone),
        "remote_to_review": appointments.remote_sessions_to_review(session, patient),
    }
    return identity_record(session, patient, sections=sections)
