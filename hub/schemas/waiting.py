"""The waiting list and the freed slots: what the coordination sends, and what the API shows (the patient named,
nothing of their health but the needs the coordination keeps to choose a place)."""

import json

from marshmallow import Schema, fields, validate

from hub.db import utcnow
from hub.models import (
    FreedSlotReason,
    PlaceKind,
    WaitingState,
    WaitingUrgency,
)
from hub.schemas.base import Enum, FormSchema, InputSchema, Int, List, Str, length

WEEKDAY = validate.Range(0, 6, error="Jour de 0 (lundi) à 6 (dimanche).")


class WaitingIn(InputSchema):
    """A patient on a program's waiting list; from a referral (accepted, to a program), the program, urgency and
    needs default to the referral's."""

    # Which of these are required depends on `referral_id` (hub.http.waiting; the OpenAPI document's anyOf).
    patient_id = Int(load_default=None, allow_none=False)
    program_id = Int(load_default=None, allow_none=False)
    referral_id = Int(load_default=None, allow_none=False)
    urgency = Enum(WaitingUrgency, by_value=True, load_default=None, allow_none=False)
    weekdays = List(Int(validate=WEEKDAY), load_default=list, validate=validate.Length(max=7))
    place_kind = Enum(PlaceKind, by_value=True, load_default=None, allow_none=False)
    needs = List(Str(validate=length(40)), load_default=None, allow_none=False, validate=validate.Length(max=10))
    note = Str(load_default=None, allow_none=False, validate=length(500))


class WaitingForm(WaitingIn, FormSchema):
    pass


class WaitingListArgs(InputSchema):
    program_id = Int(load_default=None)


class WaitingWithdrawIn(InputSchema):
    reason = Str(required=True, validate=length(300, 1))


class WithdrawForm(WaitingWithdrawIn, FormSchema):
    pass


class OfferIn(InputSchema):
    entry_id = Int(required=True)


class OfferForm(OfferIn, FormSchema):
    pass


class WaitingEntryOut(Schema):
    id = fields.Integer()
    patient_id = fields.Integer()
    patient_name = fields.String(attribute="patient.display_name")
    program_id = fields.Integer()
    program_name = fields.String(attribute="program.name")
    referral_id = fields.Integer(allow_none=True)
    urgency = fields.Enum(WaitingUrgency, by_value=True)
    urgency_label = fields.String()
    weekdays = fields.Function(lambda entry: json.loads(entry.weekdays or "[]"))
    place_kind = fields.Enum(PlaceKind, by_value=True, allow_none=True)
    needs = fields.Function(lambda entry: json.loads(entry.needs or "[]"))
    note = fields.String(allow_none=True)
    state = fields.Enum(WaitingState, by_value=True)
    state_label = fields.String()
    withdraw_reason = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    waited_days = fields.Function(lambda entry: ((entry.resolved_at or utcnow()) - entry.created_at).days)
    resolved_at = fields.AwareDateTime(allow_none=True)
    appointment_id = fields.Integer(allow_none=True)


class MatchOut(Schema):
    """A waiting patient for a freed slot: whether the slot fits, why, or what does not."""

    entry_id = fields.Integer(attribute="entry.id")
    patient_id = fields.Integer(attribute="entry.patient_id")
    patient_name = fields.String(attribute="entry.patient.display_name")
    urgency = fields.Enum(WaitingUrgency, by_value=True, attribute="entry.urgency")
    fits = fields.Boolean()
    reasons = fields.List(fields.String())
    problems = fields.List(fields.String())
    place_kind = fields.Enum(PlaceKind, by_value=True)


class FreedSlotOut(Schema):
    """A freed slot to offer (workflows.waiting.TaskView), with the waiting patients, those it fits first."""

    id = fields.Integer(attribute="task.id")
    slot_id = fields.Integer(attribute="task.slot_id")
    program_id = fields.Integer(attribute="task.slot.program_id")
    program_name = fields.String(attribute="task.slot.program.name")
    starts_at = fields.AwareDateTime(attribute="task.slot.starts_at")
    ends_at = fields.AwareDateTime(attribute="task.slot.ends_at")
    reason = fields.Enum(FreedSlotReason, by_value=True, attribute="task.reason")
    reason_label = fields.String(attribute="task.reason_label")
    created_at = fields.AwareDateTime(attribute="task.created_at")
    matches = fields.List(fields.Nested(MatchOut))


class OfferOut(Schema):
    """The offer made: the appointment booked and the entry it resolved."""

    appointment_id = fields.Integer(attribute="appointment_id")
    entry = fields.Nested(WaitingEntryOut)
