"""The outbox as the API shows it: addresses, kinds, states and ids; never a message's payload."""

from marshmallow import Schema, fields, validate

from hub.models import OutboxState
from hub.schemas.base import Enum, InputSchema, Int, Str


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
