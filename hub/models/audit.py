import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime


class AuditEvent(Base):
    """One append-only audit line. Written only through hub.audit.record(); chained afterwards by an AuditLink."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_label: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(40))
    cpts_id: Mapped[int | None] = mapped_column(Integer, index=True)
    request_id: Mapped[str | None] = mapped_column(String(40))
    ip: Mapped[str | None] = mapped_column(String(45))
    details: Mapped[str] = mapped_column(Text, default="{}")


class AuditLink(Base):
    """One link of the audit chain: the `seq`-th event in the sequencer's order, and the HMAC of that event's
    content with the previous link's mac. Append-only; written only by hub.audit.chain_pending()."""

    __tablename__ = "audit_chain"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[int] = mapped_column(ForeignKey("audit_events.id"), unique=True)
    mac: Mapped[str] = mapped_column(String(64))


class AuditUnchained(Base):
    """An event the sequencer has not chained yet: a trigger on audit_events adds the marker in the inserting
    transaction, so it appears when that transaction commits, whatever its id; the sequencer deletes it with the
    link it writes. The sequencer reads this small table instead of scanning the events for those without a link."""

    __tablename__ = "audit_unchained"

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
