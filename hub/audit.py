"""The audit log: append-only rows, one per read or write of patient data, login and denial, chained by a
sequencer with a keyed hash and checkpointed outside the database.

- `record` queues a row in the caller's transaction; at commit the queued rows are written with one INSERT,
  without a lock or a read, so a request never waits for another's audit line.
- `chain_pending` (the sequencer, the worker's loop and `flask hub audit verify`) links the rows not chained yet,
  in id order, each with an HMAC-SHA256 of its content and the previous link's mac. The key is in the server's
  configuration (HUB_AUDIT_KEY), never in the database: the database's owner can delete or rewrite rows but
  cannot forge their macs. One sequencer at a time: an advisory lock on PostgreSQL, the writer lock that every
  SQLite transaction takes (BEGIN IMMEDIATE).
- After each run that advanced the chain, `run_sequencer` appends the signed head (seq, mac, time) to a file
  outside the database, so that a tail deleted together with its links is found missing by `verify`.
"""

import contextvars
import datetime as dt
import fcntl
import functools
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Insert, Table, bindparam, delete, exists, insert, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from hub.config import DEVELOPMENT_AUDIT_KEY
from hub.db import NEW_ID, READ_ONLY, IdText, driver_execute, is_without_transaction, json_default, utcnow
from hub.models import AuditEvent, AuditLink, AuditUnchained

GENESIS_MAC = "0" * 64
# A fixed, public key for development and tests only: production refuses to start without HUB_AUDIT_KEY.
DEVELOPMENT_KEY = DEVELOPMENT_AUDIT_KEY.encode()
_SEQUENCER_LOCK_KEY = 0x41554449  # "AUDI": the advisory lock that keeps one sequencer at a time on PostgreSQL
BATCH = 5_000
PENDING_GRACE = dt.timedelta(minutes=2)
# A row the sequencer has had to chain for this long, while it runs every few seconds, means it no longer runs (the
# worker is down, or a session holds its advisory lock): the verification says the chaining stopped, not « intègre ».
PENDING_STALL = dt.timedelta(minutes=10)
_PENDING = "hub.audit.pending"
_KEPT = "hub.audit.kept"
_MARKS = "hub.audit.marks"  # each open savepoint → how many rows were queued when it began
_EVENTS = cast(Table, AuditEvent.__table__)
# Inline: no RETURNING of the ids on PostgreSQL, which nobody reads (and which an executemany pays for).
_INSERT_EVENTS = insert(_EVENTS).inline()
_LINKS = cast(Table, AuditLink.__table__)
_UNCHAINED = cast(Table, AuditUnchained.__table__)
_CONTENT = (
    AuditEvent.id,
    AuditEvent.occurred_at,
    AuditEvent.actor_user_id,
    AuditEvent.actor_label,
    AuditEvent.action,
    AuditEvent.outcome,
    AuditEvent.target_type,
    AuditEvent.target_id,
    AuditEvent.cpts_id,
    AuditEvent.request_id,
    AuditEvent.ip,
    AuditEvent.details,
)


@dataclass(frozen=True)
class AuditContext:
    request_id: str | None = None
    ip: str | None = None


current_context: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar("audit_context", default=None)


class BreakKind(StrEnum):
    REWRITTEN = "rewritten"
    MISSING = "missing"
    TRUNCATED = "truncated"
    UNCHAINED = "unchained"
    CHECKPOINT = "checkpoint"
    DELETED_UNCHAINED = "deleted_unchained"


BREAK_KIND_LABELS = {
    BreakKind.REWRITTEN: "Ligne réécrite",
    BreakKind.MISSING: "Ligne supprimée",
    BreakKind.TRUNCATED: "Fin de la chaîne supprimée",
    BreakKind.UNCHAINED: "Ligne jamais enchaînée",
    BreakKind.CHECKPOINT: "Point de contrôle falsifié",
    BreakKind.DELETED_UNCHAINED: "Ligne supprimée avant enchaînement",
}


@dataclass(frozen=True)
class ChainBreak:
    """What `verify` found wrong, in French; `seq` is the chain link concerned, when there is one."""

    seq: int | None
    reason: str
    kind: BreakKind

    @property
    def kind_label(self) -> str:
        return BREAK_KIND_LABELS[self.kind]


@dataclass(frozen=True)
class ChainHead:
    seq: int
    mac: str
    linked: int  # how many links the run that made this head added


@dataclass
class Verification:
    length: int = 0
    pending: int = 0
    checkpoints: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)
    # When the oldest row still waiting for the sequencer was recorded; `stalled` once it waited past PENDING_STALL.
    oldest_pending_at: dt.datetime | None = None
    stalled: bool = False

    @property
    def intact(self) -> bool:
        """No break, and no row left outside the chain's protection past PENDING_STALL: a stall is no break of
        the chain, but no proof either."""
        return not self.breaks and not self.stalled

    @property
    def stalled_since(self) -> dt.datetime | None:
        return self.oldest_pending_at if self.stalled else None


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
) -> dict[str, Any]:
    """Queue one audit row in the caller's transaction and return it (the values it will be inserted with). It
    is written at commit, so it is kept if and only if that transaction commits (and the savepoints it was queued
    in were not rolled back) — or, `kept_on_rollback`, at the session's next commit even if this transaction is
    rolled back: what a refusal disclosed, or a refused attempt a limit counts.

    `actor` is a User, an API caller (hub.services.accounts.Caller: its id, login and CPTS), None (anonymous), or a
    string label (a job, a login name being tried).
    `target` is a model instance with an `id`, or a (type, id) pair. Details must hold no health data.
    """
    row = event_row(actor=actor, action=action, target=target, outcome=outcome, details=details, cpts_id=cpts_id)
    session.info.setdefault(_KEPT if kept_on_rollback else _PENDING, []).append(row)
    return row


def event_row(
    *, actor, action: str, target=None, outcome: str = "success", details: dict | None = None, cpts_id=None
) -> dict[str, Any]:
    """The audit row record() would queue, for a caller that inserts it itself in its transaction with its other
    rows in one round trip (a booking: with its appointment, scheduling.bookings.insert_holding); kept, as a queued
    one, iff that transaction commits. A target ("appointments", NEW_ID): the id that statement gives."""
    # The user itself rather than flask-login's `current_user` proxy (this module knows nothing of Flask): each of
    # the four reads of the actor below would otherwise look the user up again through the request's context.
    resolve = getattr(actor, "_get_current_object", None)
    if resolve is not None:
        actor = resolve()
    target_type, target_id = _target(target)
    ctx = current_context.get() or AuditContext()
    return {
        "occurred_at": utcnow(),
        "actor_user_id": getattr(actor, "id", None),
        "actor_label": _actor_label(actor),
        "action": action,
        "outcome": outcome,
        "target_type": target_type,
        "target_id": target_id,
        "cpts_id": cpts_id if cpts_id is not None else getattr(actor, "cpts_id", None),
        "request_id": ctx.request_id,
        "ip": ctx.ip,
        "details": json.dumps(details, sort_keys=True, ensure_ascii=False, default=json_default) if details else "{}",
    }


def write_pending(session: Session) -> None:
    """Insert the queued rows, in one statement, just before the commit. The rows kept on rollback are forgotten
    only once the commit succeeded: if it fails, they are written at the next one."""
    rows = session.info.get(_KEPT, []) + session.info.pop(_PENDING, [])
    if len(rows) > 1 and is_without_transaction(session):
        # Without a transaction an executemany would commit each row on its own (on SQLite, one WAL sync each): one
        # statement of several rows is atomic and committed once.
        values = {f"{name}_{n}": value for n, row in enumerate(rows) for name, value in row.items()}
        driver_execute(session.connection(), _insert_rows(tuple(rows[0]), len(rows)), [values])
    elif rows:
        # By the driver, compiled once: every row is `record`'s dict, of the same columns (P1: a tenth of a read's
        # CPU went to SQLAlchemy's execution of this INSERT).
        driver_execute(session.connection(), _INSERT_EVENTS, rows)


# Not evicted: hub.db prepares each statement object once and keeps it (driver_execute), so a rebuilt one would be
# prepared and kept again. The counts are those of concurrent reads, bounded by a process's threads.
@functools.cache
def _insert_rows(columns: tuple[str, ...], count: int) -> Insert:
    """`count` rows in one INSERT, built once per count (by SQLAlchemy per execution it cost ~1 ms of CPU)."""
    return insert(_EVENTS).values(
        [{name: bindparam(f"{name}_{n}", type_=_EVENTS.c[name].type) for name in columns} for n in range(count)]
    )


_BATCH_WAIT_SECONDS = 90


class AuditNotWritten(Exception):
    """The batch of audit rows this request's were written with failed (the error is its cause)."""


@dataclass(eq=False)
class _Batch:
    rows: list[dict[str, Any]] = field(default_factory=list)
    written: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupCommit:
    """The audit rows of concurrent light reads (hub.http.access.light_read), committed together: one INSERT and one
    commit for the reads of a process's threads that finish while the previous batch commits.

    For SQLite (hub.app): a read's one write is its audit row, and its commit is mostly a wait, the WAL's sync under
    the database's one write lock, for which the process's other reads queued (sleeping in SQLite's busy handler).
    The first read to finish opens a batch and commits it once the previous batch is committed (at once if none is);
    the reads finishing meanwhile add their rows to it and wait. Each read still answers only after its row is
    committed, and a batch that fails fails each of its reads (AuditNotWritten)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turn = threading.Lock()  # held by the batch being committed
        self._open: _Batch | None = None

    def commit(self, session: Session) -> None:
        """Commit the session's audit rows (a light read's session, its other work done): with this thread's own
        connection if it opens the batch, else by the thread that did, waiting for it."""
        rows = session.info.get(_KEPT, []) + session.info.pop(_PENDING, [])
        if not rows:
            session.commit()
            return
        with self._lock:
            batch = self._open
            leads = batch is None
            if batch is None:
                batch = self._open = _Batch()
            batch.rows.extend(rows)
        if not leads:
            # The leader waits for the batch before, then commits, each bounded by SQLite's busy timeout (30 s,
            # hub.db): a wait beyond both means the leader is gone, and this read fails rather than answer without
            # its row.
            if not batch.written.wait(timeout=_BATCH_WAIT_SECONDS):
                raise AuditNotWritten()
            if batch.error is not None:
                raise AuditNotWritten() from batch.error
            return
        with self._turn:
            with self._lock:
                self._open = None
            try:
                session.info[_PENDING] = batch.rows
                session.info.pop(_KEPT, None)
                session.commit()
            except BaseException as error:
                batch.error = error
                raise
            finally:
                batch.written.set()


# The queue belongs to the session's outermost transaction. A savepoint's commit (RELEASE, which fires the same
# commit events) writes and forgets nothing: written there, the rows queued before it would be undone by an
# enclosing savepoint's rollback, and the kept ones would be forgotten though the transaction may still roll back.
# A savepoint's rollback drops only the rows queued since it began; the outermost transaction's, all of them.
# (The subtransaction every flush opens fires neither event: a failed flush rolls back the savepoint or the
# transaction it runs in, and that rollback is the one handled here.)


@sa_event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if session.get_nested_transaction() is None:
        write_pending(session)


@sa_event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    if session.get_nested_transaction() is None:
        session.info.pop(_KEPT, None)


@sa_event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        session.info.setdefault(_MARKS, {})[transaction] = len(session.info.get(_PENDING, ()))


@sa_event.listens_for(Session, "after_transaction_end")
def _unmark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        session.info.get(_MARKS, {}).pop(transaction, None)


@sa_event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    # Fired for the transaction whose connection rolled back: the innermost savepoint if there is one (a flush
    # failing in a subtransaction rolls back the savepoint around it), else the outermost transaction.
    savepoint = session.get_nested_transaction()
    if savepoint is None:
        discard_pending(session)
    elif _PENDING in session.info:
        del session.info[_PENDING][session.info.get(_MARKS, {}).get(savepoint, 0) :]


def discard_pending(session: Session) -> None:
    """Forget the queued rows (not those kept on rollback). A rollback does it, but only of a transaction
    begun: a request that queued rows without touching the database yet must discard them too."""
    session.info.pop(_PENDING, None)


# --- the sequencer ----------------------------------------------------------------------------------------------


def compute_mac(key: bytes, seq: int, event: Mapping[Any, Any], prev_mac: str) -> str:
    """The link's mac: HMAC-SHA256 of its position, the event's whole content (its id included, so that links
    cannot be swapped) and the previous link's mac."""
    material = [
        seq,
        event["id"],
        _iso(event["occurred_at"]),
        event["actor_user_id"],
        event["actor_label"],
        event["action"],
        event["outcome"],
        event["target_type"],
        event["target_id"],
        event["cpts_id"],
        event["request_id"],
        event["ip"],
        event["details"],
        prev_mac,
    ]
    message = json.dumps(material, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def chain_pending(session: Session, *, key: bytes, batch: int = BATCH) -> ChainHead | None:
    """Link up to `batch` committed rows not chained yet, in id order, after the chain's head; return the new
    head, or None when nothing was pending. Writes in the caller's transaction, never commits (the caller commits
    even when None: stray markers may have been dropped).

    The rows not chained yet are those audit_unchained lists (a trigger marks each row as it is inserted): on
    PostgreSQL a row may commit long after rows with higher ids were chained (ids are taken at INSERT, the commit
    comes later), and it is found all the same, without scanning the events for those without a link."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEQUENCER_LOCK_KEY})
    head = session.execute(select(AuditLink.seq, AuditLink.mac).order_by(AuditLink.seq.desc()).limit(1)).first()
    seq, mac = (head.seq, head.mac) if head else (0, GENESIS_MAC)
    events = session.execute(pending_events(batch)).mappings().all()
    if len(events) < batch:
        # A marker left for a row already linked (a restore, a bug, the application role's INSERT right the
        # trigger needs) is dropped rather than kept forever: once caught up only, when the markers are this
        # batch's and the strays (one index probe each); a backlog's passes, each with a full batch, skip it.
        # A marker whose row does not exist is kept: the trigger writes it in the row's own transaction, so it is
        # the trace of a row deleted before it was chained, which `verify` reports (pending_events skips it).
        stray = exists().where(AuditLink.event_id == _UNCHAINED.c.event_id)
        session.connection().execute(delete(_UNCHAINED).where(stray))
    if not events:
        return None
    links = []
    for event in events:
        seq += 1
        mac = compute_mac(key, seq, event, mac)
        links.append({"seq": seq, "event_id": event["id"], "mac": mac})
    connection = session.connection()
    connection.execute(insert(_LINKS), links)
    connection.execute(delete(_UNCHAINED).where(_UNCHAINED.c.event_id.in_([link["event_id"] for link in links])))
    return ChainHead(seq, mac, len(links))


def pending_events(batch: int = BATCH):
    """The first `batch` events not chained yet, in id order: read from the markers' table, in its key's order, so
    that the database walks the few markers rather than the events (SQLite would otherwise scan the events in id
    order, probing the markers for each). A marker whose row is already linked is skipped (one probe of the links'
    unique index): chaining that row again would fail on it, and every later pass with it."""
    return (
        select(*_CONTENT)
        .select_from(AuditUnchained)
        .join(AuditEvent, AuditEvent.id == AuditUnchained.event_id)
        .where(~exists().where(AuditLink.event_id == AuditUnchained.event_id))
        .order_by(AuditUnchained.event_id)
        .limit(batch)
    )


def run_sequencer(sessions: sessionmaker[Session], *, key: bytes, checkpoint_file: Path | None) -> int:
    """Chain every pending row, one committed batch at a time, and checkpoint each new head; return how many
    rows were linked. The worker's loop (every few seconds) and `flask hub audit verify` run it."""
    linked = 0
    while True:
        with sessions() as session:
            head = chain_pending(session, key=key)
            session.commit()
            if head is None:
                return linked
        # Written after the commit: a checkpoint names a head that exists, never one a rollback undid.
        if checkpoint_file is not None:
            append_checkpoint(checkpoint_file, key=key, head=head, at=utcnow())
        linked += head.linked
        if head.linked < BATCH:
            return linked


# --- checkpoints ------------------------------------------------------------------------------------------------


def _checkpoint_signature(key: bytes, seq: int, mac: str, at: str) -> str:
    return hmac.new(key, f"audit-checkpoint|{seq}|{mac}|{at}".encode(), hashlib.sha256).hexdigest()


def append_checkpoint(path: Path, *, key: bytes, head: ChainHead, at: dt.datetime) -> None:
    """Append the signed head as one JSON line, synced to disk; concurrent writers take turns (flock)."""
    stamp = _iso(at)
    line = json.dumps(
        {"seq": head.seq, "mac": head.mac, "at": stamp, "sig": _checkpoint_signature(key, head.seq, head.mac, stamp)}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoints(path: Path | None, *, key: bytes) -> tuple[dict[int, str], list[ChainBreak]]:
    """The checkpoints' heads (seq → mac) whose signature holds, and a break for each line that does not."""
    heads: dict[int, str] = {}
    breaks: list[ChainBreak] = []
    if path is None or not path.exists():
        return heads, breaks
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            item = json.loads(raw)
            seq, mac, at, sig = int(item["seq"]), str(item["mac"]), str(item["at"]), str(item["sig"])
        except (ValueError, KeyError, TypeError):
            breaks.append(
                ChainBreak(None, f"point de contrôle illisible, ligne {number} de {path}", BreakKind.CHECKPOINT)
            )
            continue
        if not hmac.compare_digest(sig, _checkpoint_signature(key, seq, mac, at)):
            breaks.append(
                ChainBreak(
                    seq, f"point de contrôle à la signature fausse, ligne {number} de {path}", BreakKind.CHECKPOINT
                )
            )
            continue
        heads[seq] = mac
    return heads, breaks


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    mac: str
    at: dt.datetime


def last_checkpoint(path: Path, *, key: bytes) -> Checkpoint | None:
    """The file's last checkpoint when its signature holds, else None; read from the file's end only (the worker
    appends one line per run that advanced the chain, so the file grows long)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 4096))
            lines = file.read().splitlines()
    except OSError:  # missing or unreadable: the page says why (hub.services.audit_chain)
        return None
    try:
        item = json.loads(lines[-1])
        seq, mac, at, sig = int(item["seq"]), str(item["mac"]), str(item["at"]), str(item["sig"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
    if not hmac.compare_digest(sig, _checkpoint_signature(key, seq, mac, at)):
        return None
    return Checkpoint(seq, mac, dt.datetime.fromisoformat(at))


# --- verification -----------------------------------------------------------------------------------------------


def verify(
    session: Session,
    *,
    key: bytes,
    checkpoint_file: Path | None = None,
    grace: dt.timedelta = PENDING_GRACE,
    now: dt.datetime | None = None,
) -> Verification:
    """Walk the whole chain and the checkpoints: every link's mac, seq contiguity, every checkpoint found in
    the chain with its mac, the chain not shorter than the last checkpoint, every row linked, no marker left by a
    row deleted before it was chained. A row not linked is pending while the sequencer still has its marker (it
    will chain it) or while younger than `grace`; one pending past PENDING_STALL makes the verification `stalled`
    (the sequencer no longer runs). A marker left over for a linked row changes nothing.
    Reads only; `seal_and_verify` chains what is pending first, `verify_reading_only` alone does not (the web
    nodes' verification)."""
    checkpoints, breaks = read_checkpoints(checkpoint_file, key=key)
    result = Verification(checkpoints=len(checkpoints), breaks=breaks)
    expected, prev_mac = 1, GENESIS_MAC
    walk = (
        select(AuditLink.seq, AuditLink.mac, AuditLink.event_id.label("linked_id"), *_CONTENT)
        .outerjoin(AuditEvent, AuditEvent.id == AuditLink.event_id)
        .order_by(AuditLink.seq)
        .execution_options(yield_per=2000)
    )
    for link in session.execute(walk).mappings():
        seq = link["seq"]
        if seq != expected:
            breaks.append(ChainBreak(seq, f"les maillons {expected} à {seq - 1} manquent", BreakKind.MISSING))
        if link["id"] is None:
            breaks.append(
                ChainBreak(seq, f"l'événement {link['linked_id']} qu'il enchaîne a disparu", BreakKind.MISSING)
            )
        elif not hmac.compare_digest(compute_mac(key, seq, link, prev_mac), link["mac"]):
            breaks.append(
                ChainBreak(seq, f"l'événement {link['id']} ou le maillon a été modifié (mac faux)", BreakKind.REWRITTEN)
            )
        if seq in checkpoints and checkpoints[seq] != link["mac"]:
            breaks.append(
                ChainBreak(
                    seq, "le maillon diffère du point de contrôle enregistré hors de la base", BreakKind.REWRITTEN
                )
            )
        expected, prev_mac = seq + 1, link["mac"]
    result.length = expected - 1
    if checkpoints and max(checkpoints) > result.length:
        breaks.append(
            ChainBreak(
                max(checkpoints),
                f"la chaîne s'arrête au maillon {result.length} alors qu'un point de contrôle atteste le maillon "
                f"{max(checkpoints)} : sa fin a été supprimée",
                BreakKind.TRUNCATED,
            )
        )
    marked = exists().where(AuditUnchained.event_id == AuditEvent.id)
    unlinked = select(AuditEvent.id, AuditEvent.occurred_at, marked.label("marked")).where(
        ~exists().where(AuditLink.event_id == AuditEvent.id)
    )
    now = now or utcnow()
    for event_id, occurred_at, is_marked in session.execute(unlinked.order_by(AuditEvent.id)):
        if is_marked or occurred_at >= now - grace:
            result.pending += 1
            if result.oldest_pending_at is None or occurred_at < result.oldest_pending_at:
                result.oldest_pending_at = occurred_at
        else:
            breaks.append(
                ChainBreak(None, f"l'événement {event_id} n'est enchaîné à aucun maillon", BreakKind.UNCHAINED)
            )
    result.stalled = result.oldest_pending_at is not None and result.oldest_pending_at < now - PENDING_STALL
    vanished = select(AuditUnchained.event_id).where(~exists().where(AuditEvent.id == AuditUnchained.event_id))
    for event_id in session.scalars(vanished.order_by(AuditUnchained.event_id)):
        breaks.append(
            ChainBreak(
                None,
                f"l'événement {event_id}, marqué à son écriture, a disparu avant son enchaînement",
                BreakKind.DELETED_UNCHAINED,
            )
        )
    return result


def seal_and_verify(
    sessions: sessionmaker[Session], *, key: bytes, checkpoint_file: Path | None = None
) -> tuple[int, Verification]:
    """Chain every pending row, then verify; return how many rows were linked and the verification. A row still
    unchained and not young, or waiting past PENDING_STALL, was queued long before its transaction committed, in
    between the pass and the walk: a second pass chains it, so that only a real break or stall is reported."""
    linked = run_sequencer(sessions, key=key, checkpoint_file=checkpoint_file)
    result = verify_reading_only(sessions, key=key, checkpoint_file=checkpoint_file)
    if result.stalled or any(item.seq is None for item in result.breaks):
        linked += run_sequencer(sessions, key=key, checkpoint_file=checkpoint_file)
        result = verify_reading_only(sessions, key=key, checkpoint_file=checkpoint_file)
    return linked, result


def verify_reading_only(sessions: sessionmaker[Session], *, key: bytes, checkpoint_file: Path | None) -> Verification:
    """The walk in a transaction that writes nothing: on SQLite it then keeps no writer waiting (hub.db.READ_ONLY);
    on PostgreSQL a SELECT blocks no writer anyway. The sequencer's batches before it lock only each other. Alone,
    it is the web nodes' verification: chaining and checkpointing are the workers' (their checkpoint file)."""
    with sessions() as session:
        session.connection(execution_options={READ_ONLY: True})
        return verify(session, key=key, checkpoint_file=checkpoint_file)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _target(target) -> tuple[str | None, str | IdText | None]:
    if target is None:
        return None, None
    if isinstance(target, tuple):
        kind, ident = target
        if ident is NEW_ID:  # a row inserted with its target (a booking's): the id is given by that statement
            return kind, IdText()
        return kind, None if ident is None else str(ident)
    return type(target).__tablename__, str(target.id)


def _actor_label(actor) -> str:
    if actor is None:
        return "anonyme"
    if isinstance(actor, str):
        return actor[:120]
    return actor.login


def key_bytes(config: Mapping[str, Any]) -> bytes:
    """The audit key from the server's configuration (HUB_AUDIT_KEY)."""
    return str(config["AUDIT_KEY"]).encode()


def checkpoint_path(config: Mapping[str, Any]) -> Path:
    return Path(config["AUDIT_CHECKPOINT_FILE"])


def take_queued(session: Session) -> list[tuple[Table, dict[str, Any]]]:
    """The rows queued in the session's transaction, taken off the queue for the caller's next write to insert with
    its own statement (hub.db.update_by_id's `inserting`; a data-modifying CTE: one round trip fewer), in the order
    they were queued: written in the same transaction, they are kept iff it commits, as queued ones. None is taken
    (the rows stay queued for the commit) where they would not be inserted by that statement (can_take_queued).
    The rows kept on rollback stay queued."""
    if not can_take_queued(session):
        return []
    return [(_EVENTS, row) for row in session.info.pop(_PENDING, [])]


def can_take_queued(session: Session) -> bool:
    """Whether take_queued takes the rows: on PostgreSQL (SQLite has no data-modifying CTE), outside any savepoint
    (whose rollback would undo the rows queued before it began). Without a transaction (hub.db.without_transaction:
    a single write's) the statement commits them with its write."""
    return session.connection().dialect.name == "postgresql" and session.get_nested_transaction() is None
