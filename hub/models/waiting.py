"""The waiting list: a patient waiting for a program of the CPTS (from a referral or from the patient's page), and
the coordinator's tasks when a slot of such a program frees (a cancellation, new dates)."""

import datetime as dt
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.patient import Patient
from hub.models.scheduling import Appointment, PlaceKind, SessionProgram, Slot


class WaitingUrgency(StrEnum):
    URGENT = "urgent"
    WITHIN_15_DAYS = "sous_15_jours"
    WHEN_POSSIBLE = "des_que_possible"


WAITING_URGENCY_LABELS = {
    WaitingUrgency.URGENT: "Urgent",
    WaitingUrgency.WITHIN_15_DAYS: "Sous 15 jours",
    WaitingUrgency.WHEN_POSSIBLE: "Dès que possible",
}
# The most urgent first, when waiting patients are ranked for a slot.
WAITING_URGENCY_RANK = {WaitingUrgency.URGENT: 0, WaitingUrgency.WITHIN_15_DAYS: 1, WaitingUrgency.WHEN_POSSIBLE: 2}


class WaitingState(StrEnum):
    WAITING = "waiting"
    BOOKED = "booked"
    WITHDRAWN = "withdrawn"


WAITING_STATE_LABELS = {
    WaitingState.WAITING: "En attente",
    WaitingState.BOOKED: "Rendez-vous pris",
    WaitingState.WITHDRAWN: "Retiré de la liste",
}
ACTIVE_WAITING = text("state = 'waiting'")


class WaitingEntry(Base):
    """A patient waiting for a slot of a program, with the urgency and what the slot must fit: the weekdays they
    can come (Monday = 0; none listed means any), the place, their needs. At most one waiting entry per patient
    and program (a partial unique index, on both databases)."""

    __tablename__ = "waiting_entries"
    __table_args__ = (
        Index(
            "uq_waiting_entries_active",
            "patient_id",
            "program_id",
            unique=True,
            sqlite_where=ACTIVE_WAITING,
            postgresql_where=ACTIVE_WAITING,
        ),
        Index("ix_waiting_entries_program_state", "program_id", "state"),
        CheckConstraint("(state = 'booked') = (appointment_id IS NOT NULL)", name="booked_has_appointment"),
        CheckConstraint("(state = 'waiting') = (resolved_at IS NULL)", name="resolved_when_not_waiting"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("session_programs.id"))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id"), index=True)
    urgency: Mapped[WaitingUrgency] = mapped_column(enum_type(WaitingUrgency, "waiting_urgency"))
    weekdays: Mapped[str] = mapped_column(String(40), default="[]")  # JSON list of weekday numbers, Monday = 0
    place_kind: Mapped[PlaceKind | None] = mapped_column(enum_type(PlaceKind, "place_kind"))
    needs: Mapped[str] = mapped_column(Text, default="[]")  # JSON list, the referrals' vocabulary
    note: Mapped[str | None] = mapped_column(String(500))
    state: Mapped[WaitingState] = mapped_column(enum_type(WaitingState, "waiting_state"), default=WaitingState.WAITING)
    withdraw_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolved_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))

    patient: Mapped[Patient] = relationship()
    program: Mapped[SessionProgram] = relationship()
    appointment: Mapped[Appointment | None] = relationship()

    @property
    def urgency_label(self) -> str:
        return WAITING_URGENCY_LABELS[self.urgency]

    @property
    def state_label(self) -> str:
        return WAITING_STATE_LABELS[self.state]


class FreedSlotReason(StrEnum):
    CANCELLATION = "cancellation"
    NEW_DATES = "new_dates"


FREED_SLOT_REASON_LABELS = {
    FreedSlotReason.CANCELLATION: "Rendez-vous annulé",
    FreedSlotReason.NEW_DATES: "Nouvelle date du programme",
}


class FreedSlotOutcome(StrEnum):
    OFFERED = "offered"  # booked for a waiting patient
    GONE = "gone"  # the slot was taken otherwise, cancelled or passed


OPEN_TASK = text("resolved_at IS NULL")


class FreedSlotTask(Base):
    """A slot of a program with waiting patients became free: the coordinator offers it. One open task per slot
    (a partial unique index); resolved when offered, or when the slot goes."""

    __tablename__ = "freed_slot_tasks"
    __table_args__ = (
        Index("uq_freed_slot_tasks_open", "slot_id", unique=True, sqlite_where=OPEN_TASK, postgresql_where=OPEN_TASK),
        Index("ix_freed_slot_tasks_cpts_open", "cpts_id", "resolved_at"),
        CheckConstraint("(resolved_at IS NULL) = (outcome IS NULL)", name="outcome_when_resolved"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    # A slot deleted (an occurrence cancelled, dates no longer in the rule) takes its tasks with it.
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id", ondelete="CASCADE"), index=True)
    reason: Mapped[FreedSlotReason] = mapped_column(enum_type(FreedSlotReason, "freed_slot_reason"))
    cancelled_appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolved_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome: Mapped[FreedSlotOutcome | None] = mapped_column(enum_type(FreedSlotOutcome, "freed_slot_outcome"))
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("waiting_entries.id"))

    slot: Mapped[Slot] = relationship()

    @property
    def reason_label(self) -> str:
        return FREED_SLOT_REASON_LABELS[self.reason]
