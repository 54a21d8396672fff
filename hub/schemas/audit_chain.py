"""The audit chain's state and a verification's result as the API shows them: counts, link numbers, event ids and
what happened; never an event's content."""

from marshmallow import Schema, fields

from hub.audit import BreakKind


class ChainBreakOut(Schema):
    seq = fields.Integer(allow_none=True)
    kind = fields.Enum(BreakKind, by_value=True)
    kind_label = fields.String()
    reason = fields.String()


class CheckpointOut(Schema):
    seq = fields.Integer()
    mac = fields.String()
    at = fields.AwareDateTime()


class LastVerificationOut(Schema):
    at = fields.AwareDateTime()
    by = fields.String()
    intact = fields.Boolean()
    breaks = fields.Integer()
    length = fields.Integer()
    seconds = fields.Float()
    stalled_since = fields.AwareDateTime(allow_none=True)
    named_breaks = fields.List(fields.Nested(ChainBreakOut))


class AuditChainOut(Schema):
    chained = fields.Integer()
    pending = fields.Integer()
    oldest_pending_at = fields.AwareDateTime(allow_none=True)
    checkpoint_file = fields.String()
    checkpoint_warning = fields.String(allow_none=True)
    last_checkpoint = fields.Nested(CheckpointOut, allow_none=True)
    last_verification = fields.Nested(LastVerificationOut, allow_none=True)


class VerificationOut(Schema):
    """A hub.services.audit_chain.VerificationRun: its walk's result flattened beside the run's own figures."""

    intact = fields.Boolean()
    length = fields.Integer(attribute="result.length")
    linked = fields.Integer()
    pending = fields.Integer(attribute="result.pending")
    # The sequencer left a row waiting past hub.audit.PENDING_STALL: not a break, but not « intègre » either.
    stalled = fields.Boolean(attribute="result.stalled")
    oldest_pending_at = fields.AwareDateTime(attribute="result.oldest_pending_at", allow_none=True)
    checkpoints = fields.Integer(attribute="result.checkpoints")
    seconds = fields.Float()
    breaks = fields.List(fields.Nested(ChainBreakOut), attribute="result.breaks")
