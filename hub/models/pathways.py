import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.patient import Patient


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
