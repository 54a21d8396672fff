"""Appointments booked through the Service d'accès aux soins (SAS): their origin, and the statuses the SAS is
told after its booking.

`record_origin` marks an appointment booked through the API on the SAS's behalf (`source` "sas" and the SAS's id
of the booking, unique). `status_changed` is called by every appointment transition (workflows.appointments): for
a SAS booking whose FHIR status (hub.services.fhir) is one the SAS follows — booked, fulfilled, noshow,
cancelled — it queues one outbox message carrying the FHIR Appointment, in the transition's transaction, keyed
`sas:<appointment>:<status>`: a status is queued once however often it is reached, and the dispatcher
(connectors.sas) sends it once, retrying on failure, the statuses of one appointment in order."""

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from connectors import outbox
from hub.errors import Conflict
from hub.models import BOOKED_THROUGH_SAS, Appointment, OutboxMessage
from hub.services import fhir

CHANNEL = "sas"
RECIPIENT = "Service d'accès aux soins"
PUSHED_STATUSES = frozenset({"booked", "fulfilled", "noshow", "cancelled"})


def record_origin(session: Session, appointment: Appointment, external_id: str) -> None:
    """The appointment was booked through the SAS, which knows it as `external_id`: a second booking with the
    same id is a conflict (the SAS repeating a request it already made)."""
    taken = session.scalar(
        select(
            exists().where(
                Appointment.source == BOOKED_THROUGH_SAS,
                Appointment.external_id == external_id,
                Appointment.id != appointment.id,
            )
        )
    )
    if taken:
        raise Conflict("Ce rendez-vous du SAS est déjà enregistré.")
    appointment.source = BOOKED_THROUGH_SAS
    appointment.external_id = external_id
    status_changed(session, appointment)


def status_changed(session: Session, appointment: Appointment) -> OutboxMessage | None:
    if appointment.source != BOOKED_THROUGH_SAS:
        return None
    resource = fhir.appointment(appointment)
    status = resource["status"]
    if status not in PUSHED_STATUSES:
        return None
    key = f"sas:{appointment.id}:{status}"
    if session.scalar(select(exists().where(OutboxMessage.idempotency_key == key))):
        return None
    return outbox.enqueue(
        session,
        channel=CHANNEL,
        recipient=RECIPIENT,
        kind=f"appointment.{status}",
        payload=resource,
        idempotency_key=key,
        cpts_id=appointment.cpts_id,
        # In order: the SAS must not hear "fulfilled" before the "booked" that a failure held back.
        group_key=f"sas:{appointment.id}",
    )
