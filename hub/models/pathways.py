import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.patient import Patient
from hub.models.professional import Professional


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
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
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
    appointment: Mapped["Appointment | None"] = relationship()  # noqa: F821 (hub.models.scheduling)
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


class Modality(StrEnum):
    IN_PERSON = "in_person"
    ASSISTED_TELECONSULTATION = "assisted_teleconsultation"
    TELESOIN = "telesoin"
    TELEEXPERTISE = "teleexpertise"


MODALITY_LABELS = {
    Modality.IN_PERSON: "Présentiel",
    Modality.ASSISTED_TELECONSULTATION: "Téléconsultation assistée",
    Modality.TELESOIN: "Télésoin",
    Modality.TELEEXPERTISE: "Téléexpertise",
}


class PathwayTemplate(Base):
    """A hybrid care pathway as data: shipped rows (cpts_id NULL) and a CPTS's own."""

    __tablename__ = "pathway_templates"
    __table_args__ = (UniqueConstraint("cpts_id", "code", name="uq_pathway_templates_cpts_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    steps: Mapped[list["PathwayStepTemplate"]] = relationship(
        back_populates="template", order_by="PathwayStepTemplate.position", cascade="all, delete-orphan"
    )


class PathwayStepTemplate(Base):
    __tablename__ = "pathway_step_templates"
    __table_args__ = (
        UniqueConstraint("template_id", "position", name="uq_pathway_step_templates_position"),
        CheckConstraint("interval_days >= 0", name="interval_days"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("pathway_templates.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    modality: Mapped[Modality] = mapped_column(enum_type(Modality, "modality"))
    profession: Mapped[str] = mapped_column(String(40))
    interval_days: Mapped[int] = mapped_column(Integer, default=0)  # after the previous step
    condition: Mapped[str | None] = mapped_column(String(300))  # e.g. "si le cardiologue le demande"

    template: Mapped[PathwayTemplate] = relationship(back_populates="steps")


class CarePathwayState(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    STOPPED = "stopped"


class CarePathway(Base):
    """A patient's instance of a pathway template."""

    __tablename__ = "care_pathways"

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("pathway_templates.id"))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id"))
    started_on: Mapped[dt.date] = mapped_column(Date)
    state: Mapped[CarePathwayState] = mapped_column(
        enum_type(CarePathwayState, "care_pathway_state"), default=CarePathwayState.ACTIVE
    )
    stop_reason: Mapped[str | None] = mapped_column(String(300))
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    patient: Mapped[Patient] = relationship()
    template: Mapped[PathwayTemplate] = relationship()
    steps: Mapped[list["CarePathwayStep"]] = relationship(
        back_populates="pathway", order_by="CarePathwayStep.position", cascade="all, delete-orphan"
    )


class StepState(StrEnum):
    PLANNED = "planned"
    BOOKED = "booked"
    DONE = "done"
    SKIPPED = "skipped"


class CarePathwayStep(Base):
    __tablename__ = "care_pathway_steps"
    __table_args__ = (Index("ix_care_pathway_steps_due", "state", "due_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pathway_id: Mapped[int] = mapped_column(ForeignKey("care_pathways.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    modality: Mapped[Modality] = mapped_column(enum_type(Modality, "step_modality"))
    profession: Mapped[str] = mapped_column(String(40))
    condition: Mapped[str | None] = mapped_column(String(300))
    due_on: Mapped[dt.date] = mapped_column(Date)
    state: Mapped[StepState] = mapped_column(enum_type(StepState, "step_state"), default=StepState.PLANNED)
    skip_reason: Mapped[str | None] = mapped_column(String(300))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id"))

    pathway: Mapped[CarePathway] = relationship(back_populates="steps")


class EligibilityOutcome(StrEnum):
    ELIGIBLE = "eligible"
    ASSISTED = "assisted"  # steered to an assisted teleconsultation (seed 003)
    INELIGIBLE = "ineligible"


class EligibilityAssessment(Base):
    """The recorded HAS télésoin eligibility checklist (seed 002) and its outcome."""

    __tablename__ = "eligibility_assessments"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    assessed_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    assessed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    modality: Mapped[Modality] = mapped_column(enum_type(Modality, "assessed_modality"))
    answers: Mapped[str] = mapped_column(Text)  # JSON of the checklist answers
    outcome: Mapped[EligibilityOutcome] = mapped_column(enum_type(EligibilityOutcome, "eligibility_outcome"))
    alternative: Mapped[str | None] = mapped_column(String(40))  # in_person, home_visit, assisted
    reasons: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of French reasons
