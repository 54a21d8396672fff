"""Idempotency keys (R12): a request sent again with the same `Idempotency-Key` gets the first answer
back instead of making a second booking.

The key is claimed by inserting its row, flushed, in the caller's transaction BEFORE the work is done:
a concurrent duplicate waits on the unique index (PostgreSQL) or behind BEGIN IMMEDIATE (SQLite) until
the first request ends. If the first committed, the duplicate finds its stored answer and replays it;
if it rolled back (a refused booking), the row went with it and the key is free for a retry.
"""

import hashlib
import json
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.errors import Conflict, HubError, ValidationFailed
from hub.models import IdempotentRequest

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # visible ASCII, as the IETF draft's examples (UUIDs and the like)
_PENDING = 0  # status of a claimed key whose answer is not written yet


class KeyReused(HubError):
    status = 422
    title = "Clé d'idempotence déjà utilisée"
    type_slug = "idempotency-key-reused"


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: dict


def check_key(key: str) -> str:
    if not _KEY.match(key or ""):
        raise ValidationFailed({HEADER: "Clé invalide : de 1 à 200 caractères ASCII visibles (un UUID par exemple)."})
    return key


def fingerprint(method: str, path: str, body: dict) -> str:
    """SHA-256 of the method, the path and the body (as canonical JSON: key order and spacing do not count)."""
    material = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


def claim(session: Session, user_id: int, key: str, request_hash: str) -> IdempotentRequest | StoredAnswer:
    """The claimed row, to `answer` once the work is done, or the answer stored by the request that
    claimed the key first. The same key with another request is refused (422)."""
    stored = _find(session, user_id, key)
    if stored is None:
        row = IdempotentRequest(user_id=user_id, key=key, request_hash=request_hash, status=_PENDING, body="")
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()  # the unique index decides here, before the work starts
            return row
        except IntegrityError:
            # A concurrent request with the same key committed first: its answer is ours.
            stored = _find(session, user_id, key)
            if stored is None:  # pragma: no cover -- the winner's row is committed by the time we get here
                raise
    if stored.request_hash != request_hash:
        raise KeyReused("Cette clé d'idempotence a déjà servi pour une autre requête : utilisez une nouvelle clé.")
    if stored.status == _PENDING:  # pragma: no cover -- a claim is only ever committed with its answer
        raise Conflict("Une requête avec cette clé d'idempotence est en cours : réessayez dans un instant.")
    return StoredAnswer(stored.status, json.loads(stored.body))


def answer(row: IdempotentRequest, status: int, body: dict) -> None:
    """Store the answer with the claim, in the same transaction as the work it describes."""
    row.status = status
    row.body = json.dumps(body, ensure_ascii=False, sort_keys=True)


def _find(session: Session, user_id: int, key: str) -> IdempotentRequest | None:
    return session.scalar(
        select(IdempotentRequest).where(IdempotentRequest.user_id == user_id, IdempotentRequest.key == key)
    )
