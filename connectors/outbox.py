"""The transactional outbox: every message that leaves the hub is first a row written in the same
transaction as the change that causes it. The dispatcher (connectors.dispatcher) delivers it after
commit, so a rolled-back change sends nothing and a committed one is never lost."""

from sqlalchemy import insert
from sqlalchemy.orm import Session

from hub.db import IdText, json_text
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


def message_row(
    *,
    channel: str,
    recipient: str,
    kind: str,
    payload: dict,
    idempotency_key: str,
    cpts_id: int | None = None,
    group_key: str | None = None,
) -> dict:
    """The row enqueue() adds, for a caller that inserts several at once (a report's deliveries)."""
    return _fields(channel, recipient, kind, payload, idempotency_key, cpts_id=cpts_id, group_key=group_key)


_INSERT = insert(OutboxMessage)  # built once; sent on the session's connection, no ORM object for a hot path


def _fields(channel, recipient, kind, payload, idempotency_key, *, cpts_id, group_key=None) -> dict:
    return {
        "channel": channel,
        "recipient": recipient,
        "kind": kind,
        "payload": json_text(payload),
        "idempotency_key": idempotency_key,
        "cpts_id": cpts_id,
        "group_key": group_key,
    }


def email_professional(
    session: Session, professional, *, kind: str, payload: dict, key: str, cpts_id: int | None
) -> bool:
    """Queue a notification e-mail to a professional (ids only, no health data), in one INSERT; False when they
    have no e-mail address. `key` names the event, so that the same event is never queued twice."""
    row = email_row(professional, kind=kind, payload=payload, key=key, cpts_id=cpts_id)
    if row is None:
        return False
    session.connection().execute(_INSERT, row)
    return True


def email_row(professional, *, kind: str, payload: dict, key: str | IdText, cpts_id: int | None) -> dict | None:
    """The row email_professional() inserts (None: no e-mail address), for a caller that inserts it with its other
    rows in one round trip (a booking: with its appointment, whose id the key and the payload may hold as NEW_ID)."""
    if professional is None or not professional.email:
        return None
    payload = {**payload, "professional_id": professional.id}
    return _fields("email", professional.email, kind, payload, f"{kind}:" + key, cpts_id=cpts_id)
