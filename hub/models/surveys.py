"""The patient's satisfaction survey after a remote act (HAS, seed 002: the practice evaluates itself). One per
session; the patient reaches it by a single-use link whose token is kept only as its SHA-256 hash. The answers
belong to the CPTS's evaluation, never to the patient's record: no page for professionals shows them one by one."""

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models.scheduling import Appointment

SCORES = {4: "Très bien", 3: "Plutôt bien", 2: "Plutôt mal", 1: "Très mal"}
SURVEY_QUESTIONS = {
    "ease": "La séance à distance a-t-elle été facile pour vous ?",
    "av_quality": "Comment étaient l'image et le son ?",
    "listened": "Vous êtes-vous senti·e écouté·e ?",
}
WOULD_AGAIN_QUESTION = "Referiez-vous une séance à distance ?"


class SatisfactionSurvey(Base):
    __tablename__ = "satisfaction_surveys"
    __table_args__ = (
        CheckConstraint("ease BETWEEN 1 AND 4", name="ease_score"),
        CheckConstraint("av_quality BETWEEN 1 AND 4", name="av_quality_score"),
        CheckConstraint("listened BETWEEN 1 AND 4", name="listened_score"),
        CheckConstraint(
            "answered_at IS NULL OR (ease IS NOT NULL AND av_quality IS NOT NULL AND listened IS NOT NULL"
            " AND would_again IS NOT NULL)",
            name="answered_in_full",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(10))  # sms, email
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ease: Mapped[int | None] = mapped_column(Integer)
    av_quality: Mapped[int | None] = mapped_column(Integer)
    listened: Mapped[int | None] = mapped_column(Integer)
    would_again: Mapped[bool | None] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text)

    appointment: Mapped[Appointment] = relationship()
