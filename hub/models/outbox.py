import datetime as dt
from enum import StrEnum

from sqlalchemy import ColumnElement, ForeignKey, Index, Integer, String, Text, and_, case, exists, or_, text
from sqlalchemy.orm import Mapped, aliased, mapped_column

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

IN_FLIGHT = (OutboxState.PENDING, OutboxState.SENDING)
# The in-flight rows, as a literal the queries repeat: SQLite uses a partial index only when the query's WHERE holds
# the index's own term (states bound as parameters do not count), and neither can PostgreSQL's generic plan of a
# prepared statement prove the index covers the query from parameters. The queries' term is qualified, so that a
# join with appointments or visit_offers (each has a `state`) stays unambiguous; both planners match it to the
# index's unqualified one once the names are resolved.
IN_FLIGHT_INDEX_SQL = text("state IN ('pending', 'sending')")
IN_FLIGHT_SQL = text("outbox_messages.state IN ('pending', 'sending')")


class OutboxMessage(Base):
    """A message to one recipient, written in the same transaction as the change that causes it and
    delivered afterwards by the dispatcher (connectors.outbox)."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_due", "state", "next_attempt_at"),
        # The CPTS's list, newest first: its count and its pages' OFFSET read the index only.
        Index("ix_outbox_messages_cpts_id_id", "cpts_id", "id"),
        # The CPTS's backlog (hub.services.outbox_messages.backlog): its in-flight rows alone, by due time; sent and
        # dead rows, the bulk of the table, are not in it.
        Index(
            "ix_outbox_messages_cpts_in_flight",
            "cpts_id",
            "next_attempt_at",
            postgresql_where=IN_FLIGHT_INDEX_SQL,
            sqlite_where=IN_FLIGHT_INDEX_SQL,
        ),
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


def due_for_dispatch(now: ColumnElement[dt.datetime] | dt.datetime) -> ColumnElement[bool]:
    """What the dispatcher takes (connectors.dispatcher.due_messages) and the backlog counts: a pending message due,
    or one whose lease ran out while sending (its dispatcher died), provided it is the first of its group still in
    flight (R7): a later version waits for the earlier one, not for the worker."""
    earlier = aliased(OutboxMessage)
    group_blocked = exists().where(
        earlier.group_key == OutboxMessage.group_key,
        earlier.id < OutboxMessage.id,
        earlier.state.in_(IN_FLIGHT),
    )
    due = or_(
        and_(OutboxMessage.state == OutboxState.PENDING, OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.state == OutboxState.SENDING, OutboxMessage.lease_until < now),
    )
    return and_(due, or_(OutboxMessage.group_key.is_(None), ~group_blocked))


def due_since() -> ColumnElement[dt.datetime]:
    """Since when a due message (due_for_dispatch) waits for a dispatcher: its due time, or its lease's end."""
    return case(
        (OutboxMessage.state == OutboxState.SENDING, OutboxMessage.lease_until), else_=OutboxMessage.next_attempt_at
    )
