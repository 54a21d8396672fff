"""The audit log: append-only, hash-chained rows, one per read or write of patient data, login and denial.

Each row's hash covers its content and the previous row's hash, so a changed or deleted row breaks
the chain that `flask hub audit verify` walks. Rows are queued during the transaction and chained
just before it commits; chain writers are serialised there (an advisory lock on PostgreSQL,
BEGIN IMMEDIATE on SQLite) so that concurrent requests still leave one valid chain.
"""

import contextvars
import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import event as sa_event
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from hub.db import utcnow
from hub.models import AuditEvent

GENESIS_HASH = "0" * 64
_AUDIT_LOCK_KEY = 0x41554449  # "AUDI": the advisory lock that serialises chain writers on PostgreSQL
_PENDING = "hub.audit.pending"
_KEPT = "hub.audit.kept"


@dataclass(frozen=True)
class AuditContext:
    request_id: str | None = None
    ip: str | None = None


current_context: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar("audit_context", default=None)


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


def record(
    session: Session,
    *,
    actor,
    action: str,
    target=None,
    outcome: str = "success",
    details: dict | None = None,
    cpts_id: int | None = None,
    kept_on_rollback: bool = False,
) -> AuditEvent:
    """Queue one audit row in the caller's transaction; it is chained and written at commit, so it is
    kept if and only if that transaction commits — or, `kept_on_rollback`, at the session's next commit even
    if this transaction is rolled back: what a refusal disclosed, or a refused attempt a limit counts.

    `actor` is a User, None (anonymous), or a string label (a job, a login name being tried).
    `target` is a model instance with an `id`, or a (type, id) pair. Details must hold no health data.
    """
    target_type, target_id = _target(target)
    ctx = current_context.get() or AuditContext()
    event = AuditEvent(
        occurred_at=utcnow(),
        actor_user_id=getattr(actor, "id", None),
        actor_label=_actor_label(actor),
        action=action,
        outcome=outcome,
        target_type=target_type,
        target_id=target_id,
        cpts_id=cpts_id if cpts_id is not None else getattr(actor, "cpts_id", None),
        request_id=ctx.request_id,
        ip=ctx.ip,
        details=json.dumps(details or {}, sort_keys=True, ensure_ascii=False, default=str),
    )
    session.info.setdefault(_KEPT if kept_on_rollback else _PENDING, []).append(event)
    return event


def write_pending(session: Session) -> None:
    """Chain and insert the queued rows. Runs just before commit, so that the chain's lock is held for
    the commit only, not for the whole request."""
    pending = session.info.pop(_KEPT, []) + session.info.pop(_PENDING, [])
    if not pending:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK_KEY})
    last = session.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    seq, prev_hash = (last.seq, last.hash) if last else (0, GENESIS_HASH)
    for event in pending:
        seq += 1
        event.seq, event.prev_hash = seq, prev_hash
        event.hash = prev_hash = compute_hash(event)
    session.add_all(pending)
    session.flush()


@sa_event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    write_pending(session)


@sa_event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    discard_pending(session)


def discard_pending(session: Session) -> None:
    """Forget the queued rows (not those kept on rollback). A rollback does it, but only of a transaction
    begun: a request that queued rows without touching the database yet must discard them too."""
    session.info.pop(_PENDING, None)


def compute_hash(event: AuditEvent) -> str:
    material = [
        event.seq,
        _iso(event.occurred_at),
        event.actor_user_id,
        event.actor_label,
        event.action,
        event.outcome,
        event.target_type,
        event.target_id,
        event.cpts_id,
        event.request_id,
        event.ip,
        event.details,
        event.prev_hash,
    ]
    return hashlib.sha256(json.dumps(material, separators=(",", ":")).encode()).hexdigest()


def verify(session: Session) -> list[ChainBreak]:
    """Walk the whole chain; return every place where it is broken (empty when intact)."""
    breaks: list[ChainBreak] = []
    expected_seq, prev_hash = 1, GENESIS_HASH
    rows = session.execute(select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=2000))
    for event in rows.scalars():
        if event.seq != expected_seq:
            breaks.append(ChainBreak(event.seq, f"rows {expected_seq}..{event.seq - 1} are missing"))
        if event.prev_hash != prev_hash:
            breaks.append(ChainBreak(event.seq, "does not follow the previous row's hash"))
        if compute_hash(event) != event.hash:
            breaks.append(ChainBreak(event.seq, "content does not match its hash"))
        expected_seq, prev_hash = event.seq + 1, event.hash
    return breaks


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _target(target) -> tuple[str | None, str | None]:
    if target is None:
        return None, None
    if isinstance(target, tuple):
        kind, ident = target
        return kind, None if ident is None else str(ident)
    return type(target).__tablename__, str(target.id)


def _actor_label(actor) -> str:
    if actor is None:
        return "anonyme"
    if isinstance(actor, str):
        return actor[:120]
    return actor.login
