"""The audit chain as a CPTS's administrator sees it: its state (links, rows waiting for the sequencer, the last
checkpoint and where checkpoints go, the last verification they may see) and « vérifier maintenant », itself
audited. The chain is the whole hub's: the page's verification only walks it (the workers chain and checkpoint),
one at a time for the whole hub."""

import contextlib
import datetime as dt
import json
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, delete, exists, func, or_, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session, sessionmaker

from hub import audit
from hub.db import session_scope, utcnow
from hub.errors import Conflict
from hub.models import AuditEvent, AuditLink, AuditUnchained, SchedulerLease

VERIFY_ACTION = "audit.verify"
# The breaks a verification keeps in its audit row (ids, link numbers and what happened: no health data). A chain
# broken in more places says how many; the CLI lists them all.
KEPT_BREAKS = 50
# A verification from the page runs inside a web request: past this, the next one over a longer chain may meet the
# web server's timeout, and the page says so.
SLOW_VERIFICATION_SECONDS = 20
# One page or API verification at a time for the whole hub (each holds a web worker and walks the whole chain).
# PostgreSQL: a transaction-level advisory try-lock, released by the walk's end or its connection's (a worker
# killed by the web server's timeout). SQLite: a lease row (scheduler_leases), which a killed process cannot
# release: it lapses after VERIFY_LEASE, longer than any web server's timeout.
_VERIFY_LOCK_KEY = 0x41554456  # "AUDV"; the sequencer's is "AUDI" (hub.audit)
VERIFY_LEASE_NAME = "audit.verify"
VERIFY_LEASE = dt.timedelta(minutes=10)
ALREADY_RUNNING = (
    "Une vérification de la chaîne est déjà en cours : attendez qu'elle se termine avant d'en lancer une autre."
)


@dataclass(frozen=True)
class LastVerification:
    at: dt.datetime
    by: str
    intact: bool
    breaks: int
    length: int
    seconds: float
    named_breaks: list[audit.ChainBreak]
    # The oldest row the sequencer had left waiting past audit.PENDING_STALL, when it had stopped chaining.
    stalled_since: dt.datetime | None

    @property
    def slow(self) -> bool:
        return self.seconds >= SLOW_VERIFICATION_SECONDS


@dataclass(frozen=True)
class ChainState:
    chained: int
    pending: int
    oldest_pending_at: dt.datetime | None
    checkpoint_file: str
    # Why checkpoints may not be written or read, in French; None when the file is there and writable.
    checkpoint_warning: str | None
    last_checkpoint: audit.Checkpoint | None
    last_verification: LastVerification | None


@dataclass(frozen=True)
class VerificationRun:
    result: audit.Verification
    linked: int
    seconds: float

    @property
    def intact(self) -> bool:
        return self.result.intact


def chain_state(session: Session, config: Mapping[str, Any], *, cpts_id: int | None) -> ChainState:
    """Three indexed reads (the head, the markers of rows waiting, the last verification `cpts_id`'s administrator
    may see) and the checkpoint file's last line: cheap whatever the chain's length. A marker left for a row
    already linked (the sequencer drops it) is not a row waiting."""
    chained = session.scalar(select(func.max(AuditLink.seq))) or 0
    pending, oldest = session.execute(
        select(func.count(), func.min(AuditEvent.occurred_at))
        .join(AuditUnchained, AuditUnchained.event_id == AuditEvent.id)
        .where(~exists().where(AuditLink.event_id == AuditEvent.id))
    ).one()
    path = audit.checkpoint_path(config)
    return ChainState(
        chained=chained,
        pending=pending,
        oldest_pending_at=oldest,
        checkpoint_file=str(path),
        checkpoint_warning=_checkpoint_warning(path, chained=chained),
        last_checkpoint=audit.last_checkpoint(path, key=audit.key_bytes(config)),
        last_verification=last_verification(session, cpts_id=cpts_id),
    )


def last_verification(session: Session, *, cpts_id: int | None) -> LastVerification | None:
    """The last verification run by an administrator of `cpts_id` or by the CLI (no user): another CPTS's
    administrator's login, and when they checked, are theirs."""
    row = session.execute(
        select(AuditEvent.occurred_at, AuditEvent.actor_label, AuditEvent.details)
        .where(
            AuditEvent.action == VERIFY_ACTION,
            or_(AuditEvent.cpts_id == cpts_id, AuditEvent.actor_user_id.is_(None)),
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    details = json.loads(row.details)
    # Verifications recorded before stalls were told apart have no "stalled_since".
    stalled = details.get("stalled_since")
    return LastVerification(
        at=row.occurred_at,
        by=row.actor_label,
        intact=details["breaks"] == 0 and stalled is None,
        stalled_since=None if stalled is None else dt.datetime.fromisoformat(stalled),
        breaks=details["breaks"],
        length=details["length"],
        seconds=details["seconds"],
        named_breaks=[
            audit.ChainBreak(item["seq"], item["reason"], audit.BreakKind(item["kind"])) for item in details["named"]
        ],
    )


def verify_for(session: Session, actor, sessions: sessionmaker[Session], config: Mapping[str, Any]) -> VerificationRun:
    """« Vérifier maintenant » from the page or the API: the walk (walk_now), then its record in the request's
    session. The walk runs in sessions of its own, so the request's transaction is ended first: on SQLite (one
    writer at a time) they would otherwise wait for its lock."""
    session.commit()
    run = walk_now(sessions, config)
    record_verification(session, actor, run)
    return run


def walk_now(sessions: sessionmaker[Session], config: Mapping[str, Any]) -> VerificationRun:
    """The page's and the API's verification: walk the whole chain and the checkpoints, reading only
    (audit.verify_reading_only): a web node neither chains nor writes a checkpoint — its file would not be the
    workers' — so the rows waiting are counted as pending, for the worker to chain. One at a time for the whole
    hub, else Conflict. In sessions of its own: the caller's transaction should be ended first. Timed: the page
    tells how long the next one may take."""
    started = time.perf_counter()
    path = audit.checkpoint_path(config)
    with _one_walk_at_a_time(sessions):
        try:
            result = audit.verify_reading_only(sessions, key=audit.key_bytes(config), checkpoint_file=path)
        except OSError as error:
            raise Conflict(
                f"Le fichier des points de contrôle {path} ne peut pas être lu ({error.strerror}) : "
                "la chaîne n'a pas été vérifiée. Corrigez HUB_AUDIT_CHECKPOINT_FILE ou ses droits."
            ) from error
    return VerificationRun(result=result, linked=0, seconds=round(time.perf_counter() - started, 3))


@contextlib.contextmanager
def _one_walk_at_a_time(sessions: sessionmaker[Session]) -> Iterator[None]:
    """Hold the hub-wide verification lock for the `with`'s body, or raise Conflict (see _VERIFY_LOCK_KEY)."""
    with sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            # Held by this session's transaction, left open (idle, no snapshot kept) while the walk runs in others.
            if not session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _VERIFY_LOCK_KEY}):
                raise Conflict(ALREADY_RUNNING)
            yield
            return
    holder = secrets.token_hex(8)
    now = utcnow()
    table = cast(Table, SchedulerLease.__table__)
    with session_scope(sessions) as session:
        upsert = sqlite.insert(table).values(name=VERIFY_LEASE_NAME, holder=holder, expires_at=now + VERIFY_LEASE)
        taken = (
            session.execute(
                upsert.on_conflict_do_update(
                    index_elements=[table.c.name],
                    set_={"holder": upsert.excluded.holder, "expires_at": upsert.excluded.expires_at},
                    where=table.c.expires_at < now,
                ).returning(table.c.holder)
            ).first()
            is not None
        )
    if not taken:
        raise Conflict(ALREADY_RUNNING)
    try:
        yield
    finally:
        with session_scope(sessions) as session:
            session.execute(
                delete(SchedulerLease).where(SchedulerLease.name == VERIFY_LEASE_NAME, SchedulerLease.holder == holder)
            )


def verify_now(sessions: sessionmaker[Session], config: Mapping[str, Any]) -> VerificationRun:
    """The CLI's verification (`flask hub audit verify`, on a worker's host): chain what is pending, checkpoint it,
    then walk the whole chain (audit.seal_and_verify), in sessions of its own. Not under the page's one-at-a-time
    lock: it is the way to verify when the page cannot, and a lease a killed page left must not stop it."""
    started = time.perf_counter()
    path = audit.checkpoint_path(config)
    try:
        linked, result = audit.seal_and_verify(sessions, key=audit.key_bytes(config), checkpoint_file=path)
    except OSError as error:
        # The links were committed, but their head could not be attested outside the database.
        raise Conflict(
            f"Le fichier des points de contrôle {path} ne peut pas être écrit ({error.strerror}) : "
            "la chaîne n'a pas été vérifiée. Corrigez HUB_AUDIT_CHECKPOINT_FILE ou ses droits."
        ) from error
    return VerificationRun(result=result, linked=linked, seconds=round(time.perf_counter() - started, 3))


def record_verification(session: Session, actor, run: VerificationRun) -> None:
    """The verification in the audit log (who, when, what it found): the page's « dernière vérification »."""
    stalled_since = run.result.stalled_since
    details = {
        "breaks": len(run.result.breaks),
        "length": run.result.length,
        "linked": run.linked,
        "seconds": run.seconds,
        "stalled_since": None if stalled_since is None else stalled_since.isoformat(),
        "named": [
            {"seq": item.seq, "kind": item.kind.value, "reason": item.reason}
            for item in run.result.breaks[:KEPT_BREAKS]
        ],
    }
    audit.record(
        session, actor=actor, action=VERIFY_ACTION, outcome="success" if run.intact else "failure", details=details
    )


def _checkpoint_warning(path: Path, *, chained: int) -> str | None:
    # The web node only reads the file (the workers write it, systemd keeps it read-only here): say what a reader
    # can tell — the file is missing where links exist (this server does not share the workers' file), or unreadable.
    if path.exists():
        if not path.is_file() or not os.access(path, os.R_OK):
            return (
                "Le fichier des points de contrôle ne peut pas être lu par ce serveur : "
                "la fin de la chaîne n'y est pas vérifiable."
            )
        return None
    if chained:
        return (
            "Le fichier des points de contrôle n'existe pas sur ce serveur alors que des lignes sont enchaînées : "
            "il ne partage pas le fichier où les workers les attestent."
        )
    return "Le fichier des points de contrôle n'existe pas encore : aucun point de contrôle n'a été écrit ici."


def oldest_pending_age(state: ChainState, now: dt.datetime | None = None) -> dt.timedelta | None:
    if state.oldest_pending_at is None:
        return None
    return (now or utcnow()) - state.oldest_pending_at
