"""The outbox as the API shows it: addresses, kinds, states and ids; never a message's payload."""

import datetime as dt

from marshmallow import Schema, fields, validate

from hub.models import OutboxState
from hub.schemas.base import Enum, InputSchema, Int, Str
from hub.services.outbox_messages import Backlog, OutboxLine


class OutboxQueryArgs(InputSchema):
    """`GET /api/v1/outbox`: by state and channel."""

    state = Enum(OutboxState, by_value=True)
    channel = Str(validate=validate.Length(max=20, error="Au plus 20 caractères."))
    page = Int()
    per_page = Int()


class OutboxMessageOut(Schema):
    id = fields.Integer()
    channel = fields.String()
    recipient = fields.String()
    kind = fields.String()
    kind_label = fields.String()
    state = fields.Enum(OutboxState, by_value=True)
    state_label = fields.String()
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    next_attempt_at = fields.AwareDateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    receipt = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    sent_at = fields.AwareDateTime(allow_none=True)
    delivery_id = fields.Integer(allow_none=True)
    acknowledgement = fields.String(allow_none=True)


def outbox_message_json(line: OutboxLine, may_see_patients: bool) -> dict:
    """A message as OutboxMessageOut dumps it (it stays the documented schema; a test compares the two), built by
    hand: marshmallow's sixteen fields per message were half of a page's CPU (P7). A patient's address is hidden
    from whoever may not see patients; the next attempt is shown for a pending message only."""
    message = line.message
    return {
        "id": message.id,
        "channel": message.channel,
        "recipient": line.shown_recipient(may_see_patients),
        "kind": message.kind,
        "kind_label": line.kind_label,
        "state": message.state.value,
        "state_label": line.state_label,
        "attempts": message.attempts,
        "max_attempts": message.max_attempts,
        "next_attempt_at": _iso(message.next_attempt_at) if message.state is OutboxState.PENDING else None,
        "last_error": message.last_error,
        "receipt": message.receipt,
        "created_at": _iso(message.created_at),
        "sent_at": _iso(message.sent_at),
        "delivery_id": line.delivery.id if line.delivery is not None else None,
        "acknowledgement": line.acknowledgement,
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class OutboxStatusOut(Schema):
    """`GET /api/v1/outbox/status`: whether the worker keeps up with the CPTS's messages."""

    waiting = fields.Integer(metadata={"description": "Messages dus que le worker n'a pas encore pris"})
    oldest_waiting_since = fields.AwareDateTime(
        allow_none=True, metadata={"description": "Depuis quand attend le plus ancien (son échéance)"}
    )
    oldest_waiting_seconds = fields.Integer(metadata={"description": "Son attente, en secondes (0 : aucun)"})
    alert_after_minutes = fields.Integer(metadata={"description": "Le seuil d'alerte (HUB_OUTBOX_ALERT_MINUTES)"})
    late = fields.Boolean(
        metadata={"description": "Le plus ancien attend au-delà du seuil : le worker est en retard ou arrêté"}
    )


def outbox_status(backlog: Backlog, alert_after: dt.timedelta) -> dict:
    """The status as OutboxStatusOut reads it (its instant a datetime): the desk's parts carry it (hub.api.desk)."""
    return {
        "waiting": backlog.waiting,
        "oldest_waiting_since": backlog.oldest_due_at,
        "oldest_waiting_seconds": int(backlog.age.total_seconds()),
        "alert_after_minutes": int(alert_after.total_seconds() // 60),
        "late": backlog.is_late(alert_after),
    }


def outbox_status_json(backlog: Backlog, alert_after: dt.timedelta) -> dict:
    """outbox_status as OutboxStatusOut dumps it (it stays the documented schema; a test compares the two), by hand
    like the messages' (outbox_message_json)."""
    status = outbox_status(backlog, alert_after)
    status["oldest_waiting_since"] = _iso(backlog.oldest_due_at)
    return status
