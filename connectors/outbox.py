"""The transactional outbox: every message that leaves the hub is first a row written in the same
transaction as the change that causes it. The dispatcher (connectors.dispatcher) delivers it after
commit, so a rolled-back change sends nothing and a committed one is never lost."""

import json

from sqlalchemy import insert
from sqlalchemy.orm import Session

from hub.models import OutboxMessage


def enqueue(
    session: Session,
    *,
    channel: str,
    recipient: str,
    kind: str,
    payload: dict,
    idempotency_key: str,
    cpts_id: int | None = None,
    group_key: str | None = None,
) -> OutboxMessage:
    """Queue one message for one recipient. The idempotency key travels with the message (MSSanté
    Message-ID, webhook id), so that a re-sent message has one effect at the receiver."""
    message = OutboxMessage(
        **_fields(channel, recipient, kind, payload, idempotency_key, cpts_id=cpts_id, group_key=group_key)
    )
    session.add(message)
    return message


def insert_message(
    session: Session,
    *,
    channel: str,
    recipient: str,
    kind: str,
    payload: dict,
    idempotency_key: str,
    cpts_id: int | None = None,
) -> None:
    """Queue one message as enqueue() does, with one INSERT sent at once rather than an object flushed later: for
    the hot paths (a booking's notification), which never read the message back."""
    # On the session's connection, not through the ORM's bulk path; one statement built and compiled once.
    session.connection().execute(_INSERT, _fields(channel, recipient, kind, payload, idempotency_key, cpts_id=cpts_id))


_INSERT = insert(OutboxMessage)


def _fields(channel, recipient, kind, payload, idempotency_key, *, cpts_id, group_key=None) -> dict:
    return {
        "channel": channel,
        "recipient": recipient,
        "kind": kind,
        "payload": json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str),
        "idempotency_key": idempotency_key,
        "cpts_id": cpts_id,
        "group_key": group_key,
    }


def email_professional(
    session: Session, professional, *, kind: str, payload: dict, key: str, cpts_id: int | None
) -> bool:
    """Queue a notification e-mail to a professional (ids only, no health data), in one INSERT; False when they
    have no e-mail address. `key` names the event, so that the same event is never queued twice."""
    if professional is None or not professional.email:
        return False
    insert_message(
        session,
        channel="email",
        recipient=professional.email,
        kind=kind,
        cpts_id=cpts_id,
        payload={**payload, "professional_id": professional.id},
        idempotency_key=f"{kind}:{key}",
    )
    return True
