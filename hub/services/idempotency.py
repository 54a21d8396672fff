"""Idempotency keys (R12): a request sent again with the same `Idempotency-Key` gets the first answer
back instead of making a second booking.

The key is claimed by inserting its row (unless it has one) in the caller's transaction BEFORE the work is
done: a concurrent duplicate waits on the unique index (PostgreSQL) or behind BEGIN IMMEDIATE (SQLite) until
the first request ends. If the first committed, the duplicate finds its stored answer and replays it;
if it rolled back (a refused booking), the row went with it and the key is free for a retry.
"""

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ClauseElement, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hub.db import driver_execute, driver_rows, utcnow
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
class Claim:
    """A key claimed by this request: its row's id, pending until `answer`."""

    id: int


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


def claim(session: Session, user_id: int, key: str, request_hash: str) -> Claim | StoredAnswer:
    """The claim, to `answer` once the work is done, or the answer stored by the request that claimed the key
    first. The same key with another request is refused (422)."""
    # Twice at most: a stored key the retention purge deletes between the INSERT and the SELECT is claimed anew.
    for _attempt in range(2):
        inserted = driver_rows(
            session,
            _CLAIM[session.connection().dialect.name],
            {"user_id": user_id, "key": key, "request_hash": request_hash, "created_at": utcnow()},
        )
        if inserted:
            return Claim(inserted[0].id)
        # The key was claimed before, or by a concurrent request that committed first: its answer is ours.
        found = driver_rows(session, _STORED, {"user_id": user_id, "key": key})
        if found:
            return _stored_answer(found[0], request_hash)
    raise Conflict("Une requête avec cette clé d'idempotence est en cours : réessayez dans un instant.")


def _stored_answer(stored, request_hash: str) -> StoredAnswer:
    if stored.request_hash != request_hash:
        raise KeyReused("Cette clé d'idempotence a déjà servi pour une autre requête : utilisez une nouvelle clé.")
    if stored.status == _PENDING:  # pragma: no cover -- a claim is only ever committed with its answer
        raise Conflict("Une requête avec cette clé d'idempotence est en cours : réessayez dans un instant.")
    return StoredAnswer(stored.status, json.loads(stored.body))


def answer(session: Session, claim: Claim, status: int, body: dict) -> None:
    """Store the answer with the claim, in the same transaction as the work it describes."""
    parameters = {"row_id": claim.id, "status": status, "body": json.dumps(body, ensure_ascii=False, sort_keys=True)}
    driver_execute(session.connection(), _ANSWER, [parameters])


def _claim_statement(insert: Callable[[Table], Any]) -> ClauseElement:
    # The key's row, pending, unless the user's key has one already: then no row comes back. A concurrent claim of
    # the same key waits on the unique index until the first one's transaction ends, then inserts (rolled back) or
    # not (committed). Every column given: hub.db.driver_rows runs the statement without SQLAlchemy's defaults.
    table = _TABLE
    values: dict[str, Any] = {
        name: bindparam(name, type_=table.c[name].type) for name in ("user_id", "key", "request_hash")
    }
    values |= {"created_at": bindparam("created_at", type_=table.c.created_at.type), "status": _PENDING, "body": ""}
    return (
        insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=[table.c.user_id, table.c.key])
        .returning(table.c.id)
    )


_TABLE = cast(Table, IdempotentRequest.__table__)
# Built once (hub.db.driver_rows prepares each statement object once): the claim in one statement, where the ORM
# took four (a SELECT of the key, a savepoint around the flushed INSERT, its release) plus the unit of work's
# UPDATE of the answer at commit (issue 17, P7: a quarter of the booking's SQL time in Python).
_CLAIM = {"postgresql": _claim_statement(postgresql.insert), "sqlite": _claim_statement(sqlite.insert)}
_STORED = select(IdempotentRequest.request_hash, IdempotentRequest.status, IdempotentRequest.body).where(
    IdempotentRequest.user_id == bindparam("user_id"), IdempotentRequest.key == bindparam("key")
)
_ANSWER = (
    update(_TABLE)
    .where(IdempotentRequest.id == bindparam("row_id"))
    .values(status=bindparam("status"), body=bindparam("body"))
)
