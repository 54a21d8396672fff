"""Incidents of a session (HAS: analyse des événements indésirables, problèmes techniques, interruptions): a
technical problem, or an adverse event (EI) — serious (EIG) or not — recorded by who took part in it."""

import datetime as dt
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.scheduling import Appointment
from hub.models.user import User


class IncidentKind(StrEnum):
    CONNECTION_LOST = "connection_lost"
    PHONE_FALLBACK = "phone_fallback"
    EQUIPMENT_FAILURE = "equipment_failure"
    ADVERSE_EVENT = "adverse_event"
    SERIOUS_ADVERSE_EVENT = "serious_adverse_event"


INCIDENT_KIND_LABELS = {
    IncidentKind.CONNECTION_LOST: "Connexion perdue",
    IncidentKind.PHONE_FALLBACK: "Bascule au téléphone",
    IncidentKind.EQUIPMENT_FAILURE: "Panne de matériel",
    IncidentKind.ADVERSE_EVENT: "Événement indésirable (EI)",
    IncidentKind.SERIOUS_ADVERSE_EVENT: "Événement indésirable grave (EIG)",
}
TECHNICAL_INCIDENTS = frozenset(
    {IncidentKind.CONNECTION_LOST, IncidentKind.PHONE_FALLBACK, IncidentKind.EQUIPMENT_FAILURE}
)


class IncidentSeverity(StrEnum):
    MINOR = "minor"
    MODERATE = "moderate"
    SEVERE = "severe"


INCIDENT_SEVERITY_LABELS = {
    IncidentSeverity.MINOR: "Mineure : sans conséquence pour la séance ni pour le patient",
    IncidentSeverity.MODERATE: "Modérée : séance perturbée ou patient gêné",
    IncidentSeverity.SEVERE: "Grave : séance interrompue ou patient mis en danger",
}


class SessionIncident(Base):
    __tablename__ = "session_incidents"
    __table_args__ = (
        # An EIG is grave by definition; the workflow names the contradiction before the database meets it.
        CheckConstraint("kind != 'serious_adverse_event' OR severity = 'severe'", name="eig_is_severe"),
        Index("ix_session_incidents_cpts_time", "cpts_id", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    kind: Mapped[IncidentKind] = mapped_column(enum_type(IncidentKind, "incident_kind"))
    severity: Mapped[IncidentSeverity] = mapped_column(enum_type(IncidentSeverity, "incident_severity"))
    description: Mapped[str] = mapped_column(Text)
    recorded_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    appointment: Mapped[Appointment] = relationship()
    recorded_by: Mapped[User] = relationship()

    @property
    def is_serious(self) -> bool:
        return self.kind is IncidentKind.SERIOUS_ADVERSE_EVENT
