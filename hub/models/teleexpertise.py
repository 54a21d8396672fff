"""A téléexpertise request (requérant → requis) and its attachments; the answer is a report (hub.models.reports)."""

import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.patient import Patient
from hub.models.professional import Professional
from hub.models.reports import Report


class TeleexpertiseState(StrEnum):
    SUBMITTED = "submitted"
    ASSIGNED = "assigned"  # FHIR ServiceRequest active/ready
    IN_PROGRESS = "in_progress"  # active/in_progress
    ANSWERED = "answered"
    CLOSED = "closed"
    DECLINED = "declined"
    EXPIRED = "expired"


TELEEXPERTISE_STATE_LABELS = {
    TeleexpertiseState.SUBMITTED: "Envoyée",
    TeleexpertiseState.ASSIGNED: "Attribuée",
    TeleexpertiseState.IN_PROGRESS: "En cours d'examen",
    TeleexpertiseState.ANSWERED: "Répondue",
    TeleexpertiseState.CLOSED: "Clôturée",
    TeleexpertiseState.DECLINED: "Déclinée",
    TeleexpertiseState.EXPIRED: "Expirée (délai dépassé)",
}
TELEEXPERTISE_REQUEST_LOINC = "75496-0"


class TeleexpertiseRequest(Base):
    """A requester's question to an expert or to a specialty pool (requis) about one patient."""

    __tablename__ = "teleexpertise_requests"
    __table_args__ = (
        CheckConstraint("expert_id IS NOT NULL OR specialty IS NOT NULL", name="request_has_expert"),
        Index("ix_teleexpertise_requests_state_deadline", "state", "deadline_at"),
        Index("ix_teleexpertise_requests_cpts_submitted", "cpts_id", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: ix_teleexpertise_requests_cpts_submitted leads with it.
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("professionals.id"), index=True)
    expert_id: Mapped[int | None] = mapped_column(ForeignKey("professionals.id"), index=True)
    specialty: Mapped[str | None] = mapped_column(String(100))  # the pool, when no expert is named
    consent_id: Mapped[int] = mapped_column(ForeignKey("consents.id"))
    question: Mapped[str] = mapped_column(Text)
    context: Mapped[str | None] = mapped_column(Text)
    deadline_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    state: Mapped[TeleexpertiseState] = mapped_column(
        enum_type(TeleexpertiseState, "teleexpertise_state"), default=TeleexpertiseState.SUBMITTED
    )
    decline_reason: Mapped[str | None] = mapped_column(String(500))
    answer_report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))
    # The request document (75496-0), frozen at submission like a signed report.
    document_uid: Mapped[str | None] = mapped_column(String(64), unique=True)
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    pdf_size: Mapped[int | None] = mapped_column(Integer)
    cda_sha256: Mapped[str | None] = mapped_column(String(64))
    cda_size: Mapped[int | None] = mapped_column(Integer)
    # Set when the requester was told, before sending, that this request is past the yearly cap (paid 0 €).
    over_cap_acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    assigned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship()
    requester: Mapped[Professional] = relationship(foreign_keys=[requester_id])
    expert: Mapped[Professional | None] = relationship(foreign_keys=[expert_id])
    answer: Mapped[Report | None] = relationship(foreign_keys=[answer_report_id])
    attachments: Mapped[list["TeleexpertiseAttachment"]] = relationship(
        back_populates="request", order_by="TeleexpertiseAttachment.id"
    )


class TeleexpertiseAttachment(Base):
    """A photo of a wound, a result, an ECG: stored outside the web root under its content hash (I3)."""

    __tablename__ = "teleexpertise_attachments"
    __table_args__ = (CheckConstraint("size > 0", name="teleexpertise_attachment_size"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("teleexpertise_requests.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(60))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    request: Mapped[TeleexpertiseRequest] = relationship(back_populates="attachments")
