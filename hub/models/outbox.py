import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"


OUTBOX_STATE_LABELS = {
    OutboxState.PENDING: "Envoi en attente",
    OutboxState.SENDING: "En cours d'envoi",
    OutboxState.SENT: "Envoyé",
    OutboxState.DEAD: "En échec définitif",
}

# Why a document's message was stopped before leaving (its `last_error`). Such a message stays dead: sending it
# again would deposit despite the withdrawn consent, or carry the identity as it was before the change.
DMP_CONSENT_WITHDRAWN = "consentement DMP retiré : dépôt annulé"
IDENTITY_CHANGED = "identité du patient modifiée après signature : envoi annulé, à refaire par une nouvelle version"


class OutboxMessage(Base):
    """A message to one recipient, written in the same transaction as the change that causes it and
    delivered afterwards by the dispatcher (connectors.outbox)."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_due", "state", "next_attempt_at"),
        # The CPTS's list, newest first: its count and its pages' OFFSET read the index only.
        Index("ix_outbox_messages_cpts_id_id", "cpts_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(20))  # email, sms, mssante, dmp, webhook
    recipient: Mapped[str] = mapped_column(String(254))
    kind: Mapped[str] = mapped_column(String(60))  # what it says: reminder, escalation, report…
    # Messages of one group (e.g. the versions of one report) leave one at a time, in order (R7).
    group_key: Mapped[str | None] = mapped_column(String(120), index=True)
    payload: Mapped[str] = mapped_column(Text)  # JSON; no health data for e-mail and SMS
    state: Mapped[OutboxState] = mapped_column(enum_type(OutboxState, "outbox_state"), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    receipt: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
