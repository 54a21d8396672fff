"""The audit chain as its administrator sees it: its state (links, rows waiting for the sequencer, the last
checkpoint and where checkpoints go, the last verification) and « vérifier maintenant », itself audited."""

import datetime as dt
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hub import audit
from hub.db import utcnow
from hub.errors import Conflict
from hub.models import AuditEvent, AuditLink, AuditUnchained

VERIFY_ACTION = "audit.verify"
# The breaks a verification keeps in its audit row (ids, link numbers and what happened: no health data). A chain
# broken in more places says how many; the CLI lists them all.
KEPT_BREAKS = 50
# A verification from the page runs inside a web request: past this, the next one over a longer chain may meet the
# web server's timeout, and the page says so.
SLOW_VERIFICATION_SECONDS = 20


@dataclass(frozen=True)
class NamedBreak:
    seq: int | None
    kind: audit.BreakKind
    reason: str

    @property
    def kind_label(self) -> str:
        return audit.BREAK_KIND_LABELS[self.kind]


@dataclass(frozen=True)
class LastVerification:
    at: dt.datetime
    by: str
    intact: bool
    breaks: int
    length: int
    seconds: float
    named_breaks: list[NamedBreak]

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
        return not self.result.breaks


def chain_state(session: Session, config: Mapping[str, Any]) -> ChainState:
    """Three indexed reads (the head, the markers of rows waiting, the last verification) and the checkpoint
    file's last line: cheap whatever the chain's length."""
    chained = session.scalar(select(func.max(AuditLink.seq))) or 0
    pending, oldest = session.execute(
        select(func.count(), func.min(AuditEvent.occurred_at)).join(
            AuditUnchained, AuditUnchained.event_id == AuditEvent.id
        )
    ).one()
    path = audit.checkpoint_path(config)
    return ChainState(
        chained=chained,
        pending=pending,
        oldest_pending_at=oldest,
        checkpoint_file=str(path),
        checkpoint_warning=_checkpoint_warning(path),
        last_checkpoint=audit.last_checkpoint(path, key=audit.key_bytes(config)),
        last_verification=last_verification(session),
    )


def last_verification(session: Session) -> LastVerification | None:
    row = session.execute(
        select(AuditEvent.occurred_at, AuditEvent.actor_label, AuditEvent.details)
        .where(AuditEvent.action == VERIFY_ACTION)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    details = json.loads(row.details)
    return LastVerification(
        at=row.occurred_at,
        by=row.actor_label,
        intact=details["breaks"] == 0,
        breaks=details["breaks"],
        length=details["length"],
        seconds=details["seconds"],
        named_breaks=[
            NamedBreak(item["seq"], audit.BreakKind(item["kind"]), item["reason"]) for item in details["named"]
        ],
    )


def verify_now(sessions: sessionmaker[Session], config: Mapping[str, Any]) -> VerificationRun:
    """Chain what is pending, then walk the whole chain (audit.seal_and_verify), in sessions of its own: the
    caller's transaction should be ended first, so that it holds no lock during the walk. Time it: the page
    tells how long the next one may take."""
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
    details = {
        "breaks": len(run.result.breaks),
        "length": run.result.length,
        "linked": run.linked,
        "seconds": run.seconds,
        "named": [
            {"seq": item.seq, "kind": item.kind.value, "reason": item.reason}
            for item in run.result.breaks[:KEPT_BREAKS]
        ],
    }
    audit.record(
        session, actor=actor, action=VERIFY_ACTION, outcome="success" if run.intact else "failure", details=details
    )


def _checkpoint_warning(path: Path) -> str | None:
    if path.exists():
        if not os.access(path, os.W_OK):
            return (
                "Le fichier des points de contrôle ne peut pas être modifié par ce serveur : "
                "la chaîne n'y est plus attestée."
            )
        return None
    folder = next((parent for parent in path.parents if parent.exists()), None)
    if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK):
        return "Le fichier des points de contrôle n'existe pas et ne peut pas être créé par ce serveur."
    return "Le fichier des points de contrôle n'existe pas encore : aucun point de contrôle n'a été écrit ici."


def oldest_pending_age(state: ChainState, now: dt.datetime | None = None) -> dt.timedelta | None:
    if state.oldest_pending_at is None:
        return None
    return (now or utcnow()) - state.oldest_pending_at
