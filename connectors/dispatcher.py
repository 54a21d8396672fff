"""The outbox dispatcher: claim due messages, send them outside any transaction, record the outcome.

1. Claim, in one short transaction: due messages (pending and due, or sending with an expired lease),
   oldest first, skipping any message whose group has an earlier message still pending or sending
   (R7). On PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED`, so several dispatchers share the
   queue without handling a message twice (R3), and taken in one `UPDATE … RETURNING`; on SQLite every
   transaction is BEGIN IMMEDIATE, which serialises claimers (one dispatcher is enough there). Claimed rows
   become `sending` with a lease and one more attempt. Plain rows, no ORM: this is the drain's hot path.
2. Send each message with the connector of its channel for its CPTS (that CPTS's settings over the server's,
   read in one query per batch), with no transaction open. A drain sends with SENDERS threads: the messages of a
   connector that sends concurrently (e-mail: one SMTP connection per thread, kept from batch to batch) go side
   by side, those of any other connector one after the other. A batch never holds two messages of one group, so
   sending side by side keeps R7.
3. Record the outcomes in short transactions (one for the outcomes known within RECORD_WITHIN_SECONDS, on
   PostgreSQL one statement), each row only if it is still ours (same lease): sent, or a retry with capped
   exponential backoff and full jitter, or dead after the last attempt or at once on a permanent error (R5).
   One failing message never holds up the others (R6).

A dispatcher that dies mid-send leaves its rows `sending`; when the lease runs out they are claimed
again and re-sent with the same idempotency key (R2).
"""

import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import queue
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import cast

from sqlalchemy import ARRAY, DateTime, Integer, String, Table, bindparam, func, select, update
from sqlalchemy import cast as sa_cast
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeEngine

from connectors.base import Connector, OutgoingMessage, PermanentError, TransientError
from connectors.registry import ConnectorRegistry, close_all
from connectors.settings import load_cpts_settings
from hub import audit
from hub.db import rows_changed, session_scope, utcnow
from hub.errors import Conflict, NotFound, describe_failure
from hub.models import OutboxMessage, OutboxState
from hub.models.outbox import DMP_CONSENT_WITHDRAWN, IDENTITY_CHANGED, IN_FLIGHT, due_for_dispatch

log = logging.getLogger(__name__)

DEFAULT_LEASE = dt.timedelta(minutes=5)
BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(hours=1)
UNCONFIGURED_RETRY = dt.timedelta(minutes=5)
# Outcomes are written together, once this old: one transaction for many messages instead of one each.
RECORD_WITHIN_SECONDS = 1.0
# How long sent messages' outcomes wait for an unreachable database, within their lease (a restart takes seconds).
RECORD_RETRY_LIMIT_SECONDS = 120.0
# Threads sending at once in a drain, each on its own connection (connectors that say they can: SMTP ones).
SENDERS = 4
NOT_CONFIGURED = "connecteur non configuré"
UNUSABLE_SETTINGS = "réglages du connecteur inutilisables : à corriger par l'administrateur"
ABANDONED = "abandonné : aucun résultat après la dernière tentative"
_jitter = secrets.SystemRandom()
clock_seconds = time.monotonic


@dataclass
class DispatchStats:
    claimed: int = 0
    # Rows a claim took, sent or not (put back: waiting for their connector, abandoned): a drain goes on while its
    # claims come back full, not while it has something to send — a batch of messages waiting for a connector
    # says nothing of what is due behind it.
    taken: int = 0
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
    senders: int = 1,
    close_connections: bool = True,
) -> DispatchStats:
    """Claim up to `batch` due messages, send them, record each outcome. Safe to run in several
    processes at once on PostgreSQL; a message is never lost (a crash leaves it to come back after
    its lease) and never handled by two dispatchers at once while its lease holds. With `senders` > 1,
    that many threads send at once, each on its own connection. Connectors' open connections are closed
    at the end unless `close_connections` is false (drain closes them itself)."""
    with _sending_threads(senders) as pool:
        return _dispatch(
            session_factory,
            connectors,
            now=now,
            batch=batch,
            lease=lease,
            pool=pool,
            close_connections=close_connections,
        )


def drain(
    session_factory: sessionmaker[Session],
    *,
    connectors: Mapping[str, Connector],
    batch: int = 50,
    max_batches: int = 20,
    lease: dt.timedelta = DEFAULT_LEASE,
    senders: int = SENDERS,
) -> DispatchStats:
    """Dispatch batches until the queue has nothing due (or `max_batches` were done): the worker's loop. With
    sending threads the database work overlaps the sending: the next batch is claimed while the current one is
    sent (its lease starts again when it is handed to the senders, if half of it has gone), and the current one's
    last outcomes are written while the next one is sent."""
    total = DispatchStats()
    try:
        with _sending_threads(senders) as pool:
            stats = DispatchStats()
            claims = _claim(session_factory, connectors, now=utcnow(), batch=batch, lease=lease, stats=stats)
            outcomes = _send_all(claims, utcnow, pool)  # the SMTP connections stay open from batch to batch
            for done in range(1, max_batches + 1):
                following = DispatchStats()
                full = stats.taken == batch and done < max_batches
                with _written_on_error(session_factory, outcomes, stats):
                    more = (
                        _claim(session_factory, connectors, now=utcnow(), batch=batch, lease=lease, stats=following)
                        if full
                        else []
                    )
                last = _record_older(session_factory, outcomes, stats)
                with _written_on_error(session_factory, last, stats):
                    more = _renew_lease(session_factory, more, lease=lease, stats=following)
                outcomes = _send_all(more, utcnow, pool)
                with _written_on_error(session_factory, outcomes, following):
                    _record(session_factory, last, stats)
                _add(total, stats)
                if not full:
                    break
                stats = following
    finally:
        close_all(connectors)
    return total


@contextlib.contextmanager
def _written_on_error(session_factory, outcomes: Iterable["_Outcome"], stats: DispatchStats) -> Iterator[None]:
    """On an error (or a stop), the outcomes of messages already handed to the senders are still waited for and
    written, each within its own lease, before the error goes on: unwritten, they would be sent again after it."""
    try:
        yield
    except BaseException:
        _record_as_known(session_factory, outcomes, stats)
        raise


def _renew_lease(session_factory, claims: list[_Claim], *, lease: dt.timedelta, stats: DispatchStats) -> list[_Claim]:
    """The claims of a batch claimed while the previous one was sent, with their lease starting now, when they are
    handed to the senders: it ran while they waited, and once out the next claim (this drain's own) would take
    the rows again and send them a second time. A row whose lease another dispatcher has taken meanwhile is
    left to it, not sent (counted as a lost lease). A batch with half its lease left or more goes as it is: the one
    before it was quick (the usual case), and a write here would hold up the senders."""
    now = utcnow()
    if not claims or now < claims[0].lease_until - lease / 2:
        return claims
    old_lease = claims[0].lease_until  # one claim, one lease for the whole batch
    new_lease = now + lease
    with session_scope(session_factory) as session:
        ours = set(
            session.scalars(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id.in_([claim.message.id for claim in claims]),
                    OutboxMessage.state == OutboxState.SENDING,
                    OutboxMessage.lease_until == old_lease,
                )
                .values(lease_until=new_lease)
                .returning(OutboxMessage.id)
                .execution_options(synchronize_session=False)
            )
        )
    if len(ours) < len(claims):
        lost = [claim.message.id for claim in claims if claim.message.id not in ours]
        stats.lost_lease += len(lost)
        log.warning("outbox: messages %s lost their lease before being sent", ", ".join(map(str, lost)))
    return [replace(claim, lease_until=new_lease) for claim in claims if claim.message.id in ours]


def _add(total: DispatchStats, stats: DispatchStats) -> None:
    for name in vars(total):
        setattr(total, name, getattr(total, name) + getattr(stats, name))


def _dispatch(session_factory, connectors, *, now, batch, lease, pool, close_connections: bool) -> DispatchStats:
    clock = (lambda: now) if now is not None else utcnow
    stats = DispatchStats()
    claims = _claim(session_factory, connectors, now=clock(), batch=batch, lease=lease, stats=stats)
    try:
        _record_as_known(session_factory, _send_all(claims, clock, pool), stats)
    finally:
        if close_connections:
            close_all(connectors)
    return stats


def _record_as_known(session_factory, outcomes: Iterable["_Outcome"], stats: DispatchStats) -> None:
    _record(session_factory, _record_older(session_factory, outcomes, stats), stats)


def _record_older(session_factory, outcomes: Iterable["_Outcome"], stats: DispatchStats) -> list["_Outcome"]:
    """Wait for every outcome, writing them each time the oldest unwritten is RECORD_WITHIN_SECONDS old; returns
    those not written yet."""
    unrecorded: list[_Outcome] = []
    for outcome in outcomes:
        unrecorded.append(outcome)
        if clock_seconds() - unrecorded[0].at >= RECORD_WITHIN_SECONDS:
            _record(session_factory, unrecorded, stats)
            unrecorded = []
    return unrecorded


@contextlib.contextmanager
def _sending_threads(senders: int) -> Iterator[ThreadPoolExecutor | None]:
    if senders <= 1:
        yield None
        return
    with ThreadPoolExecutor(senders, thread_name_prefix="outbox-sender") as pool:
        yield pool


def _send_all(claims: list[_Claim], clock, pool: ThreadPoolExecutor | None) -> Iterator["_Outcome"]:
    """Each claim's outcome, as soon as it is known; with a pool, every message is handed to the threads at once.
    The messages of a connector that sends concurrently go one per task, those of any other connector one after
    the other in a single task."""
    if pool is None:
        return (_send(claim, clock) for claim in claims)
    known: queue.SimpleQueue[_Outcome] = queue.SimpleQueue()
    lanes = [pool.submit(_send_lane, lane, clock, known.put) for lane in _lanes(claims)]
    return (_next_outcome(known, lanes) for _ in claims)


def _next_outcome(known: "queue.SimpleQueue[_Outcome]", lanes: list[Future]) -> "_Outcome":
    while True:
        try:
            return known.get(timeout=0.5)
        except queue.Empty:
            pass
        for lane in lanes:
            if lane.done():
                lane.result()  # raises what stopped the lane, if anything did (_send itself catches Exception)


def _lanes(claims: list[_Claim]) -> list[list[_Claim]]:
    lanes: list[list[_Claim]] = []
    one_at_a_time: dict[int, list[_Claim]] = {}
    for claim in claims:
        if getattr(claim.connector, "sends_concurrently", False):
            lanes.append([claim])
        else:
            one_at_a_time.setdefault(id(claim.connector), []).append(claim)
    return [*one_at_a_time.values(), *lanes]


def _send_lane(lane: list[_Claim], clock, known: Callable[["_Outcome"], None]) -> None:
    for claim in lane:
        known(_send(claim, clock))


def due_messages(now: dt.datetime, *, batch: int):
    """Due rows, oldest first, each the first of its group still pending or sending (R7)."""
    return select(OutboxMessage).where(due_for_dispatch(now)).order_by(OutboxMessage.id).limit(batch)


# What a claim reads of each row: an OutgoingMessage's fields, and how many attempts it may have.
_MESSAGE_FIELDS = tuple(field.name for field in dataclasses.fields(OutgoingMessage))


def _claim(session_factory, connectors, *, now, batch, lease, stats: DispatchStats) -> list[_Claim]:
    claims: list[_Claim] = []
    with session_scope(session_factory) as session:
        rows = _take(session, now=now, batch=batch, lease_until=now + lease)
        connector_for = _resolver(session, connectors, rows)
        abandoned: list[int] = []
        waiting: dict[str, list[int]] = {}
        for row in rows:
            if row.attempts >= row.max_attempts:
                # Its last attempt's lease ran out with no outcome: the dispatcher died on it. Sending it
                # again could kill the next one too (a poison message), so it stops here (R6).
                abandoned.append(row.id)
                continue
            message = OutgoingMessage(**{name: getattr(row, name) for name in _MESSAGE_FIELDS})
            connector, problem = connector_for(message)
            if connector is None:
                # Kept, not lost: it waits for its connector to be configured (for its CPTS).
                waiting.setdefault(problem, []).append(row.id)
                continue
            attempts = row.attempts + 1
            claims.append(
                _Claim(replace(message, attempts=attempts), connector, attempts, row.max_attempts, now + lease)
            )
        # The rows taken but not to be sent, put back as they were, in the same transaction: rare.
        if abandoned:
            _put_back(session, abandoned, state=OutboxState.DEAD, last_error=ABANDONED)
            stats.dead += len(abandoned)
        for problem, ids in waiting.items():
            retry_at = now + UNCONFIGURED_RETRY
            _put_back(session, ids, state=OutboxState.PENDING, last_error=problem, next_attempt_at=retry_at)
            stats.unconfigured += len(ids)
    stats.claimed, stats.taken = len(claims), len(rows)
    return claims


def _take(session: Session, *, now: dt.datetime, batch: int, lease_until: dt.datetime) -> list:
    """The due rows (`due_messages`), made `sending` under a new lease with one more attempt, as they were before
    (plain rows: the OutgoingMessage fields, max_attempts). On PostgreSQL one statement, the rows locked `FOR
    UPDATE SKIP LOCKED` by its subquery; on SQLite (BEGIN IMMEDIATE: the rows are ours already) a SELECT, then an
    UPDATE of those rows."""
    table = cast(Table, OutboxMessage.__table__)
    columns = [table.c[name] for name in (*_MESSAGE_FIELDS, "max_attempts")]
    taken = {"state": OutboxState.SENDING, "attempts": table.c.attempts + 1, "lease_until": lease_until}
    if session.get_bind().dialect.name == "postgresql":
        due = due_messages(now, batch=batch).with_only_columns(*columns)
        due = due.with_for_update(skip_locked=True).subquery("due")
        statement = update(table).where(table.c.id == due.c.id).values(taken).returning(*due.c)
        return sorted(session.execute(statement), key=lambda row: row.id)
    rows = list(session.execute(due_messages(now, batch=batch).with_only_columns(*columns)))
    if rows:
        session.execute(update(table).where(table.c.id.in_([row.id for row in rows])).values(taken))
    return rows


def _put_back(session: Session, ids: list[int], **values) -> None:
    """Rows `_take` took that are not sent: their lease dropped and their attempt given back."""
    table = cast(Table, OutboxMessage.__table__)
    statement = update(table).where(table.c.id.in_(ids))
    session.execute(statement.values(lease_until=None, attempts=table.c.attempts - 1, **values))


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


@dataclass(frozen=True)
class _Outcome:
    claim: _Claim
    name: str  # a DispatchStats counter: sent, retried, dead
    values: dict
    at: float  # when it was known (monotonic seconds)


def _send(claim: _Claim, clock) -> _Outcome:
    message = claim.message
    try:
        receipt = claim.connector.send(message)
    except PermanentError as exc:
        return _outcome(claim, "dead", state=OutboxState.DEAD, last_error=str(exc)[:500])
    except TransientError as exc:
        return _retry_or_bury(claim, clock(), str(exc)[:500])
    except Exception as exc:
        # A connector bug must not stop the batch (R6); its text may hold anything, so only its type is kept.
        log.error("outbox message %s: unexpected connector error\n%s", message.id, describe_failure(exc))
        return _retry_or_bury(claim, clock(), f"erreur inattendue du connecteur ({type(exc).__name__})")
    sent = {"state": OutboxState.SENT, "receipt": receipt.id[:300], "sent_at": clock(), "last_error": None}
    return _outcome(claim, "sent", **sent)


def _retry_or_bury(claim: _Claim, now: dt.datetime, error: str) -> _Outcome:
    if claim.attempts >= claim.max_attempts:
        return _outcome(claim, "dead", state=OutboxState.DEAD, last_error=error)
    retry_at = now + backoff_delay(claim.attempts)
    return _outcome(claim, "retried", state=OutboxState.PENDING, next_attempt_at=retry_at, last_error=error)


def _outcome(claim: _Claim, name: str, **values) -> _Outcome:
    return _Outcome(claim, name, values, clock_seconds())


def _record(session_factory, outcomes: list[_Outcome], stats: DispatchStats) -> None:
    """Write the outcomes, in one transaction, each only if its row is still ours: same attempt, same lease.
    Outcomes wait at most RECORD_WITHIN_SECONDS to be written, far less than a lease."""
    if not outcomes:
        return
    written = _write_outcomes_while_ours(session_factory, outcomes)
    for (name, _columns), (group, count) in written.items():
        setattr(stats, name, getattr(stats, name) + count)
        if count < len(group):
            stats.lost_lease += len(group) - count
            ids = ", ".join(str(outcome.claim.message.id) for outcome in group)
            log.warning("outbox: %s of messages %s lost their lease before being recorded", name, ids)
        if name == "dead":
            log.warning("outbox messages %s are dead", ", ".join(str(o.claim.message.id) for o in group))


def _write_outcomes_while_ours(session_factory, outcomes: list[_Outcome]) -> dict:
    """Write the outcomes; while the database is unreachable (a restart, a failover), try again with a growing
    wait for as long as the rows' lease lasts. Their messages were sent: giving up would leave them to be claimed
    and sent a second time after the lease. Past the lease the rows are no longer ours, and the error is raised."""
    give_up_at = time.monotonic() + _seconds_left_on_lease(outcomes)
    wait = 0.2
    while True:
        try:
            return _write_outcomes(session_factory, outcomes)
        except DBAPIError as exc:
            if not (exc.connection_invalidated or isinstance(exc, OperationalError)):
                raise
            if time.monotonic() + wait > give_up_at:
                raise
            log.warning("outbox: database unreachable, recording %s outcome(s) again in %.1f s", len(outcomes), wait)
            time.sleep(wait)
            wait = min(wait * 2, 5.0)


def _seconds_left_on_lease(outcomes: list[_Outcome]) -> float:
    """The wall-clock time left before the first of these rows' leases runs out, less a margin; at least one
    immediate retry, at most RECORD_RETRY_LIMIT_SECONDS (a drain run with a clock of its own in tests)."""
    left = (min(outcome.claim.lease_until for outcome in outcomes) - utcnow()).total_seconds() - 1.0
    return min(max(left, 0.0), RECORD_RETRY_LIMIT_SECONDS)


def _write_outcomes(session_factory, outcomes: list[_Outcome]) -> dict:
    """(outcome, columns) → (its outcomes, how many rows were still ours), the lease checked row by row by the
    WHERE clause: on PostgreSQL one statement for them all (the outcomes as arrays, `unnest`ed), elsewhere one
    executemany per kind of outcome (sent, retried, dead)."""
    groups: dict[tuple[str, tuple[str, ...]], list[_Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.name, tuple(sorted(outcome.values))), []).append(outcome)
    with session_scope(session_factory) as session:
        if session.get_bind().dialect.name == "postgresql":
            ours = set(session.scalars(_outcomes_update(), _arrays(outcomes)))
            return {key: (group, sum(o.claim.message.id in ours for o in group)) for key, group in groups.items()}
        return {
            key: (group, rows_changed(session, _outcome_update(key[1]), [_parameters(o) for o in group]))
            for key, group in groups.items()
        }


def _parameters(outcome: _Outcome) -> dict:
    claim = outcome.claim
    return {"_id": claim.message.id, "_attempts": claim.attempts, "_lease_until": claim.lease_until, **outcome.values}


@functools.cache
def _outcome_update(names: tuple[str, ...]):
    """The UPDATE of one outcome, built once per set of columns; a Core statement, so that a list of
    parameters is one executemany (whose rowcount is the total, on SQLite and psycopg alike)."""
    table = cast(Table, OutboxMessage.__table__)  # declared as a FromClause; a mapped class's is a Table
    return (
        update(table)
        .where(
            table.c.id == bindparam("_id"),
            table.c.state == OutboxState.SENDING,
            table.c.attempts == bindparam("_attempts"),
            table.c.lease_until == bindparam("_lease_until", type_=table.c.lease_until.type),
        )
        .values(lease_until=None, **{name: bindparam(name, type_=table.c[name].type) for name in names})
    )


# The outcomes as arrays for PostgreSQL: the row, its attempt and lease (to check it is still ours), then what every
# outcome sets (state, last_error) and what only some do (a sent one's receipt and time, a retry's next attempt).
_WHOSE: dict[str, TypeEngine] = {"id": Integer(), "attempts": Integer(), "lease_until": DateTime(timezone=True)}
_ALWAYS: dict[str, TypeEngine] = {"state": String(), "last_error": String()}
_SOMETIMES: dict[str, TypeEngine] = {
    "receipt": String(),
    "sent_at": DateTime(timezone=True),
    "next_attempt_at": DateTime(timezone=True),
}


@functools.cache
def _outcomes_update():
    """Every outcome of a batch in one UPDATE … FROM unnest(arrays), returning the ids of the rows still ours; a
    column an outcome does not set (NULL in its array) keeps its value. One statement and one plan whatever the
    number of outcomes, where an executemany is a statement per row."""
    table = cast(Table, OutboxMessage.__table__)
    arrays = _WHOSE | _ALWAYS | _SOMETIMES
    unnest = func.unnest(*(sa_cast(bindparam(f"o_{name}"), ARRAY(kind)) for name, kind in arrays.items()))
    given = unnest.table_valued(*arrays).render_derived(name="outcome")
    kept = {name: func.coalesce(given.c[name], table.c[name]) for name in _SOMETIMES}
    return (
        update(table)
        .where(
            table.c.id == given.c.id,
            table.c.state == OutboxState.SENDING,
            table.c.attempts == given.c.attempts,
            table.c.lease_until == given.c.lease_until,
        )
        .values(lease_until=None, **{name: given.c[name] for name in _ALWAYS}, **kept)
        .returning(table.c.id)
    )


def _arrays(outcomes: list[_Outcome]) -> dict[str, list]:
    whose = {"id": lambda c: c.message.id, "attempts": lambda c: c.attempts, "lease_until": lambda c: c.lease_until}
    arrays = {f"o_{name}": [value(o.claim) for o in outcomes] for name, value in whose.items()}
    for name in (*_ALWAYS, *_SOMETIMES):
        arrays[f"o_{name}"] = [o.values.get(name) for o in outcomes]
    arrays["o_state"] = [str(state) for state in arrays["o_state"]]  # the enum's stored values
    return arrays


def requeue(session: Session, actor, message_id: int, *, now: dt.datetime | None = None) -> OutboxMessage:
    """The admin sends a dead message again: back to pending, due now, attempts reset; audited.
    Only a dead message can be re-queued (a pending or sending one is already on its way)."""
    message = session.get(OutboxMessage, message_id, with_for_update=True)
    if message is None:
        raise NotFound("Message introuvable.")
    if message.state is not OutboxState.DEAD:
        raise Conflict("Seul un message en échec définitif peut être renvoyé.")
    if message.last_error in (DMP_CONSENT_WITHDRAWN, IDENTITY_CHANGED):
        raise Conflict(f"Ce document ne peut pas être renvoyé : {message.last_error}.")
    if message.group_key is not None and session.scalar(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.group_key == message.group_key,
            OutboxMessage.id > message.id,
            OutboxMessage.state.in_((*IN_FLIGHT, OutboxState.SENT)),
        )
        .limit(1)
    ):
        # A later message of its group (a corrected report) has left or is leaving: this one would arrive after
        # it, or beside it (R7).
        raise Conflict(
            "Une version plus récente de ce document est déjà partie : l'ancienne ne peut plus être renvoyée."
        )
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
