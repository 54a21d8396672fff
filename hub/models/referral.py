"""A GP's referral (adressage) of a patient to a session program or a specialist, and its attachments."""

import datetime as dt
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.patient import Patient
from hub.models.professional import Professional
from hub.models.scheduling import Appointment


class ReferralState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    DONE = "done"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


REFERRAL_STATE_LABELS = {
    ReferralState.DRAFT: "Brouillon",
    ReferralState.SUBMITTED: "Envoyé",
    ReferralState.ACCEPTED: "Accepté",
    ReferralState.SCHEDULED: "Programmé",
    ReferralState.DONE: "Réalisé",
    ReferralState.REJECTED: "Refusé",
    ReferralState.CANCELLED: "Annulé",
}


class Urgency(StrEnum):
    ROUTINE = "routine"
    SOON = "soon"
    URGENT = "urgent"


URGENCY_LABELS = {Urgency.ROUTINE: "Programmé", Urgency.SOON: "Sous 15 jours", Urgency.URGENT: "Urgent"}
# Triage order: the most urgent first.
URGENCY_RANK = {Urgency.URGENT: 0, Urgency.SOON: 1, Urgency.ROUTINE: 2}


class Referral(Base):
    """The GP's referral (adressage) of a patient to a session program or a specialist."""

    __tablename__ = "referrals"
    __table_args__ = (Index("ix_referrals_cpts_state", "cpts_id", "state", "submitted_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("professionals.id"), index=True)
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    target_program_id: Mapped[int | None] = mapped_column(ForeignKey("session_programs.id"))
    target_specialist_id: Mapped[int | None] = mapped_column(ForeignKey("professionals.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    current_treatment: Mapped[str | None] = mapped_column(Text)
    history: Mapped[str | None] = mapped_column(Text)
    free_text: Mapped[str | None] = mapped_column(Text)
    urgency: Mapped[Urgency] = mapped_column(enum_type(Urgency, "urgency"), default=Urgency.ROUTINE)
    needs: Mapped[str] = mapped_column(Text, default="[]")  # JSON list: illectronisme, mobilité, audition…
    consent_id: Mapped[int | None] = mapped_column(ForeignKey("consents.id"))
    state: Mapped[ReferralState] = mapped_column(
        enum_type(ReferralState, "referral_state"), default=ReferralState.DRAFT
    )
    rejection_reason: Mapped[str | None] = mapped_column(String(500))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"), index=True)
    # The referral letter (96349-6), rendered and stored under its hash when the referral is scheduled, so
    # that the appointment carries the letter as it was sent.
    letter_sha256: Mapped[str | None] = mapped_column(String(64))
    letter_size: Mapped[int | None] = mapped_column(Integer)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship()
    appointment: Mapped[Appointment | None] = relationship()
    author: Mapped[Professional] = relationship(foreign_keys=[author_id])
    target_specialist: Mapped[Professional | None] = relationship(foreign_keys=[target_specialist_id])
    attachments: Mapped[list["ReferralAttachment"]] = relationship(
        back_populates="referral", order_by="ReferralAttachment.id"
    )


class AttachmentKind(StrEnum):
    BIOLOGY_PRESCRIPTION = "biology_prescription"
    RESULTS = "results"
    ECG = "ecg"
    OTHER = "other"


ATTACHMENT_KIND_LABELS = {
    AttachmentKind.BIOLOGY_PRESCRIPTION: "Ordonnance de bilan biologique",
    AttachmentKind.RESULTS: "Résultats",
    AttachmentKind.ECG: "ECG",
    AttachmentKind.OTHER: "Autre document",
}


class ReferralAttachment(Base):
    """A document of a referral, stored outside the web root under its content hash."""

    __tablename__ = "referral_attachments"
    __table_args__ = (CheckConstraint("size > 0", name="attachment_size"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"), index=True)
    kind: Mapped[AttachmentKind] = mapped_column(enum_type(AttachmentKind, "attachment_kind"))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(60))  # as sniffed from the content, not as sent
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    referral: Mapped[Referral] = relationship(back_populates="attachments")
