"""The outbox dispatcher: claim due messages, send them outside any transaction, record the outcome.

1. Claim, in one short transaction: due messages (pending and due, or sending with an expired lease),
   oldest first, skipping any message whose group has an earlier message still pending or sending
   (R7). On PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED`, so several dispatchers share the
   queue without handling a message twice (R3); on SQLite every transaction is BEGIN IMMEDIATE, which
   serialises claimers (one dispatcher is enough there). Claimed rows become `sending` with a lease
   and one more attempt.
2. Send each message with the connector of its channel for its CPTS (that CPTS's settings over the server's,
   read in one query per batch), with no transaction open.
3. Record each outcome in its own short transaction, only if the row is still ours (same lease): sent,
   or a retry with capped exponential backoff and full jitter, or dead after the last attempt or at
   once on a permanent error (R5). One failing message never holds up the others (R6).

A dispatcher that dies mid-send leaves its rows `sending`; when the lease runs out they are claimed
again and re-sent with the same idempotency key (R2).
"""

import datetime as dt
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased, sessionmaker

from connectors.base import (
    Connector,
    ConnectorRegistry,
    OutgoingMessage,
    PermanentError,
    TransientError,
    close_all,
)
from hub import audit
from hub.db import session_scope, utcnow
from hub.errors import Conflict, NotFound
from hub.models import OutboxMessage, OutboxState
from hub.services.connector_settings import load_cpts_settings

log = logging.getLogger(__name__)

DEFAULT_LEASE = dt.timedelta(minutes=5)
BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(hours=1)
UNCONFIGURED_RETRY = dt.timedelta(minutes=5)
NOT_CONFIGURED = "connecteur non configuré"
UNUSABLE_SETTINGS = "réglages du connecteur inutilisables : à corriger par l'administrateur"
ABANDONED = "abandonné : aucun résultat après la dernière tentative"
IN_FLIGHT = (OutboxState.PENDING, OutboxState.SENDING)
_jitter = secrets.SystemRandom()


@dataclass
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    unconfigured: int = 0
    lost_lease: int = 0  # the lease ran out while sending and another dispatcher took the row


@dataclass(frozen=True)
class _Claim:
    message: OutgoingMessage
    connector: Connector
    attempts: int
    max_attempts: int
    lease_until: dt.datetime


def backoff_delay(
    attempt: int,
    *,
    base: dt.timedelta = BACKOFF_BASE,
    cap: dt.timedelta = BACKOFF_CAP,
    random: Callable[[], float] = _jitter.random,
) -> dt.timedelta:
    """The wait before retry number `attempt` + 1: uniform in [0, min(cap, base · 2^(attempt-1))] ("full
    jitter"), so that messages failing together do not come back together."""
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2 ** min(max(attempt - 1, 0), 40))
    return dt.timedelta(seconds=random() * ceiling)


def dispatch_once(
    session_factory: sessionmaker[Session],
    *,
    connectors: Mapping[str, Connector],
    now: dt.datetime | None = None,
    batch: int = 50,
    lease: dt.timedelta = DEFAULT_LEASE,
) -> DispatchStats:
    """Claim up to `batch` due messages, send them, record each outcome. Safe to run in several
    processes at once on PostgreSQL; a message is never lost (a crash leaves it to come back after
    its lease) and never handled by two dispatchers at once while its lease holds."""
    clock = (lambda: now) if now is not None else utcnow
    stats = DispatchStats()
    claims = _claim(session_factory, connectors, now=clock(), batch=batch, lease=lease, stats=stats)
    try:
        for claim in claims:
            _send_and_record(session_factory, claim.connector, claim, clock, stats)
    finally:
        close_all(connectors)
    return stats


def drain(
    session_factory: sessionmaker[Session],
    *,
    connectors: Mapping[str, Connector],
    batch: int = 50,
    max_batches: int = 20,
    lease: dt.timedelta = DEFAULT_LEASE,
) -> DispatchStats:
    """Dispatch batches until the queue has nothing due (or `max_batches` were done): the worker's loop."""
    total = DispatchStats()
    for _ in range(max_batches):
        stats = dispatch_once(session_factory, connectors=connectors, batch=batch, lease=lease)
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(stats, name))
        if stats.claimed < batch:
            break
    return total


def due_messages(now: dt.datetime, *, batch: int):
    """Due rows, oldest first, each the first of its group still pending or sending (R7)."""
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
    return (
        select(OutboxMessage)
        .where(due, or_(OutboxMessage.group_key.is_(None), ~group_blocked))
        .order_by(OutboxMessage.id)
        .limit(batch)
    )


def _claim(session_factory, connectors, *, now, batch, lease, stats: DispatchStats) -> list[_Claim]:
    claims: list[_Claim] = []
    with session_scope(session_factory) as session:
        statement = due_messages(now, batch=batch)
        if session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=True, of=OutboxMessage)
        rows = session.scalars(statement).all()
        connector_for = _resolver(session, connectors, rows)
        for row in rows:
            if row.attempts >= row.max_attempts:
                # Its last attempt's lease ran out with no outcome: the dispatcher died on it. Sending it
                # again could kill the next one too (a poison message), so it stops here (R6).
                row.state, row.lease_until, row.last_error = OutboxState.DEAD, None, ABANDONED
                stats.dead += 1
                continue
            message = OutgoingMessage.of(row)
            connector, problem = connector_for(message)
            if connector is None:
                # Kept, not lost: it waits for its connector to be configured (for its CPTS).
                row.state, row.lease_until, row.last_error = OutboxState.PENDING, None, problem
                row.next_attempt_at = now + UNCONFIGURED_RETRY
                stats.unconfigured += 1
                continue
            row.state = OutboxState.SENDING
            row.attempts += 1
            row.lease_until = now + lease
            claims.append(
                _Claim(
                    replace(message, attempts=row.attempts), connector, row.attempts, row.max_attempts, row.lease_until
                )
            )
    stats.claimed = len(claims)
    return claims


def _resolver(session, connectors: Mapping[str, Connector], rows) -> Callable:
    """message → (its connector, None) or (None, why it waits). With a ConnectorRegistry, each CPTS's own
    settings apply, read in one query for the whole batch."""
    if not isinstance(connectors, ConnectorRegistry):
        return lambda message: (connectors.get(message.channel), NOT_CONFIGURED)
    cpts_settings = load_cpts_settings(session, {row.cpts_id for row in rows})

    def connector_for(message: OutgoingMessage):
        try:
            return connectors.for_message(message, cpts_settings), NOT_CONFIGURED
        except Exception as exc:
            # Settings a connector cannot use (a CA file gone since it was saved…): the message waits.
            log.warning("outbox message %s: connector settings unusable (%s)", message.id, type(exc).__name__)
            return None, UNUSABLE_SETTINGS

    return connector_for


def _send_and_record(session_factory, connector: Connector, claim: _Claim, clock, stats: DispatchStats) -> None:
    message = claim.message
    try:
        receipt = connector.send(message)
    except PermanentError as exc:
        _record(session_factory, claim, stats, "dead", state=OutboxState.DEAD, last_error=str(exc)[:500])
    except TransientError as exc:
        _retry_or_bury(session_factory, claim, clock(), stats, str(exc)[:500])
    except Exception as exc:
        # A connector bug must not stop the batch (R6); its text may hold anything, so only its type is kept.
        log.exception("outbox message %s: unexpected connector error", message.id)
        _retry_or_bury(
            session_factory, claim, clock(), stats, f"erreur inattendue du connecteur ({type(exc).__name__})"
        )
    else:
        _record(
            session_factory,
            claim,
            stats,
            "sent",
            state=OutboxState.SENT,
            receipt=receipt.id[:300],
            sent_at=clock(),
            last_error=None,
        )


def _retry_or_bury(session_factory, claim: _Claim, now: dt.datetime, stats: DispatchStats, error: str) -> None:
    if claim.attempts >= claim.max_attempts:
        _record(session_factory, claim, stats, "dead", state=OutboxState.DEAD, last_error=error)
        return
    _record(
        session_factory,
        claim,
        stats,
        "retried",
        state=OutboxState.PENDING,
        next_attempt_at=now + backoff_delay(claim.attempts),
        last_error=error,
    )


def _record(session_factory, claim: _Claim, stats: DispatchStats, outcome: str, **values) -> None:
    """Write the outcome only if the row is still ours: same attempt, same lease."""
    try:
        changed = _write_outcome(session_factory, claim, values)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        # The database dropped the connection (a restart, a failover): the pool reconnects (pre-ping) and the
        # outcome is written once more, instead of the message coming back after its lease to be sent again.
        log.warning("outbox message %s: database connection lost, recording its outcome again", claim.message.id)
        changed = _write_outcome(session_factory, claim, values)
    if changed == 1:
        setattr(stats, outcome, getattr(stats, outcome) + 1)
    else:
        stats.lost_lease += 1
        log.warning("outbox message %s: lease lost before its outcome (%s) was recorded", claim.message.id, outcome)
    if outcome == "dead":
        log.warning("outbox message %s is dead after %s attempt(s)", claim.message.id, claim.attempts)


def _write_outcome(session_factory, claim: _Claim, values: dict) -> int:
    with session_scope(session_factory) as session:
        return session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == claim.message.id,
                OutboxMessage.state == OutboxState.SENDING,
                OutboxMessage.attempts == claim.attempts,
                OutboxMessage.lease_until == claim.lease_until,
            )
            .values(lease_until=None, **values)
            .execution_options(synchronize_session=False)
        ).rowcount


def requeue(session: Session, actor, message_id: int, *, now: dt.datetime | None = None) -> OutboxMessage:
    """The admin sends a dead message again: back to pending, due now, attempts reset; audited.
    Only a dead message can be re-queued (a pending or sending one is already on its way)."""
    message = session.get(OutboxMessage, message_id, with_for_update=True)
    if message is None:
        raise NotFound("Message introuvable.")
    if message.state is not OutboxState.DEAD:
        raise Conflict("Seul un message en échec définitif peut être renvoyé.")
    previous_attempts = message.attempts
    message.state = OutboxState.PENDING
    message.attempts = 0
    message.next_attempt_at = now or utcnow()
    message.lease_until = None
    audit.record(
        session,
        actor=actor,
        action="outbox.requeue",
        target=message,
        cpts_id=message.cpts_id,
        details={"previous_attempts": previous_attempts, "channel": message.channel},
    )
    return message
