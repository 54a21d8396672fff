"""Patients without a médecin traitant: entering one on the list, proposing to a GP, the GP's answer and capacity;
what the list and an entry show."""

from marshmallow import Schema, fields, pre_load, validate

from hub.models import CHRONIC_CONDITIONS, ConsentMethod, GpSearchState
from hub.schemas.base import Bool, Date, Enum, FormSchema, InputSchema, Int, List, Str, length

CONDITION = validate.OneOf(sorted(CHRONIC_CONDITIONS), error="Pathologie chronique inconnue.")
CAPACITY = validate.Range(0, 50, error="Indiquez un nombre entre 0 et 50.")
OUTCOMES = (GpSearchState.WITHDRAWN, GpSearchState.FOUND_ELSEWHERE)


class GpSearchIn(InputSchema):
    patient_id = Int(required=True)
    consent_on = Date(required=True)
    consent_method = Enum(ConsentMethod, by_value=True, required=True)
    has_ald = Bool(load_default=False)
    chronic_conditions = List(Str(validate=CONDITION), load_default=list)
    hospitalised_on = Date(allow_none=True)
    is_isolated = Bool(load_default=False)
    other_fragility = Str(validate=length(300), allow_none=True)


class GpSearchForm(FormSchema, GpSearchIn):
    @pre_load
    def _one_checkbox_is_a_list(self, data, **_kwargs):
        # A form sends a single ticked checkbox as a plain value.
        if isinstance(data, dict) and isinstance(data.get("chronic_conditions"), str):
            data = {**data, "chronic_conditions": [data["chronic_conditions"]]}
        return data


class ProposeIn(InputSchema):
    gp_id = Int(required=True)


class ProposeForm(FormSchema, ProposeIn):
    pass


class GpSearchWithdrawIn(InputSchema):
    outcome = Enum(
        GpSearchState, by_value=True, load_default=GpSearchState.WITHDRAWN, validate=validate.OneOf(OUTCOMES)
    )
    reason = Str(required=True, validate=length(300, 1))


class WithdrawForm(FormSchema, GpSearchWithdrawIn):
    pass


class RefuseIn(InputSchema):
    reason = Str(required=True, validate=length(300, 1))


class RefuseForm(FormSchema, RefuseIn):
    pass


class CapacityIn(InputSchema):
    capacity = Int(required=True, validate=CAPACITY)


class CapacityForm(FormSchema, CapacityIn):
    pass


class GpProposalOut(Schema):
    id = fields.Integer()
    gp_id = fields.Integer()
    gp_name = fields.Function(lambda p: p.gp.full_name)
    state = fields.Function(lambda p: p.state.value)
    proposed_at = fields.AwareDateTime()
    responded_at = fields.AwareDateTime(allow_none=True)
    reason = fields.String(allow_none=True)


class GpSearchOut(Schema):
    """An entry with its fragility (score, priority, reasons) and proposals: `row` is (entry, fragility)."""

    id = fields.Function(lambda row: row[0].id)
    patient_id = fields.Function(lambda row: row[0].patient_id)
    patient_name = fields.Function(lambda row: row[0].patient.display_name)
    state = fields.Function(lambda row: row[0].state.value)
    consent_on = fields.Function(lambda row: row[0].consent_on.isoformat())
    consent_method = fields.Function(lambda row: row[0].consent_method.value)
    entered_at = fields.Function(lambda row: row[0].entered_at.isoformat())
    fragility_score = fields.Function(lambda row: row[1].score)
    priority = fields.Function(lambda row: row[1].priority.value)
    reasons = fields.Function(lambda row: row[1].reasons)
    gp_id = fields.Function(lambda row: row[0].gp_id)
    proposals = fields.Function(lambda row: GpProposalOut(many=True).dump(row[0].proposals))


class MatchingGpOut(Schema):
    gp_id = fields.Function(lambda m: m.gp.id)
    name = fields.Function(lambda m: m.gp.full_name)
    capacity = fields.Function(lambda m: m.gp.new_patient_capacity)
    distance_km = fields.Function(lambda m: None if m.distance_km is None else round(m.distance_km, 1))


class GpSearchDetailOut(Schema):
    purpose = fields.String()
    entry = fields.Nested(GpSearchOut)
    matching_gps = fields.List(fields.Nested(MatchingGpOut))


class GpSearchListOut(Schema):
    purpose = fields.String()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    items = fields.List(fields.Nested(GpSearchOut))


class CapacityOut(Schema):
    capacity = fields.Integer()
