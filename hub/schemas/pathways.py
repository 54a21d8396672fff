"""Pathway templates, care pathways and the télésoin eligibility checklist: inputs (shape only), page forms,
and what the API shows."""

import json

from marshmallow import EXCLUDE, Schema, fields, validate

from hub.models import MODALITY_LABELS, Modality, PlaceKind, Profession
from hub.schemas.base import Bool, Date, Enum, FormSchema, InputSchema, Int, List, Str, length
from hub.schemas.scheduling import TelesoinFields

ACT_KIND_CHOICES = ("follow_up", "initial_assessment", "renewal_assessment")
ALTERNATIVE_CHOICES = ("in_person", "home_visit")


def _one_of(choices) -> validate.OneOf:
    return validate.OneOf(list(choices), error="Choix invalide.")


class TemplateStepIn(InputSchema):
    name = Str(required=True, validate=length(200, 1))
    modality = Enum(Modality, by_value=True, required=True)
    profession = Enum(Profession, by_value=True, required=True)
    interval_days = Int(load_default=0, validate=validate.Range(min=0, max=3650, error="Entre 0 et 3650 jours."))
    condition = Str(validate=length(300))


MAX_TEMPLATE_STEPS = 50


class TemplateStepsIn(InputSchema):
    steps = List(
        fields.Nested(TemplateStepIn),
        required=True,
        validate=validate.Length(max=MAX_TEMPLATE_STEPS, error=f"Au plus {MAX_TEMPLATE_STEPS} étapes."),
    )


class TemplateCopyIn(InputSchema):
    source_id = Int(required=True)
    code = Str(validate=length(40, 1))
    name = Str(validate=length(200, 1))


class TemplateStepOut(Schema):
    id = fields.Integer()
    position = fields.Integer()
    name = fields.String()
    modality = fields.Function(lambda step: step.modality.value)
    modality_label = fields.Function(lambda step: MODALITY_LABELS[step.modality])
    profession = fields.String()
    interval_days = fields.Integer()
    condition = fields.String(allow_none=True)


class TemplateOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    is_shipped = fields.Function(lambda template: template.cpts_id is None)
    is_active = fields.Boolean()
    steps = fields.List(fields.Nested(TemplateStepOut))


class PathwayIn(InputSchema):
    patient_id = Int(required=True)
    template_id = Int(required=True)
    started_on = Date()


class PathwayReasonIn(InputSchema):
    reason = Str(required=True, validate=length(300, 1))


class StepBookingIn(InputSchema):
    appointment_id = Int(required=True)


class PathwayStepOut(Schema):
    id = fields.Integer()
    position = fields.Integer()
    name = fields.String()
    modality = fields.Function(lambda step: step.modality.value)
    profession = fields.String()
    condition = fields.String(allow_none=True)
    due_on = fields.Date()
    state = fields.Function(lambda step: step.state.value)
    skip_reason = fields.String(allow_none=True)
    appointment_id = fields.Integer(allow_none=True)


class PathwayOut(Schema):
    id = fields.Integer()
    patient_id = fields.Integer()
    template_id = fields.Integer()
    template_name = fields.Function(lambda pathway: pathway.template.name)
    started_on = fields.Date()
    state = fields.Function(lambda pathway: pathway.state.value)
    stop_reason = fields.String(allow_none=True)
    steps = fields.List(fields.Nested(PathwayStepOut))


class EligibilityIn(InputSchema):
    """The checklist's answers; an unanswered criterion is refused by the workflow, which names it."""

    modality = Enum(Modality, by_value=True, required=True)
    profession = Enum(Profession, by_value=True, required=True)
    act_kind = Str(load_default="follow_up", validate=_one_of(ACT_KIND_CHOICES))
    first_care_reason = Str(validate=length(500))
    alternative = Str(validate=_one_of(ALTERNATIVE_CHOICES))
    clinical_situation_compatible = Bool(allow_none=True)
    can_communicate_remotely = Bool(allow_none=True)
    can_use_tools = Bool(allow_none=True)
    aidant_present = Bool(allow_none=True)
    physical_factors_ok = Bool(allow_none=True)
    psychological_factors_ok = Bool(allow_none=True)
    social_factors_ok = Bool(allow_none=True)
    needs_direct_contact = Bool(allow_none=True)
    needs_equipment_not_at_hand = Bool(allow_none=True)
    is_first_care = Bool(allow_none=True)
    parent_present = Bool(allow_none=True)
    several_conditions = Bool(allow_none=True)
    illectronism = Bool(allow_none=True)
    mobility_issues = Bool(allow_none=True)


class EligibilityForm(EligibilityIn):
    class Meta:
        unknown = EXCLUDE


class EligibilityOut(Schema):
    id = fields.Integer()
    patient_id = fields.Integer()
    modality = fields.Function(lambda a: a.modality.value)
    outcome = fields.Function(lambda a: a.outcome.value)
    alternative = fields.String(allow_none=True)
    reasons = fields.Function(lambda a: json.loads(a.reasons or "[]"))
    answers = fields.Function(lambda a: json.loads(a.answers or "{}"))
    assessed_at = fields.AwareDateTime()


class PathwayStartForm(FormSchema):
    template_id = Int(required=True)
    started_on = Date()


class SkipForm(FormSchema):
    reason = Str(required=True, validate=length(300, 1))


class StepBookingForm(TelesoinFields, FormSchema):
    slot_id = Int(required=True)
    place_kind = Enum(PlaceKind, by_value=True, required=True)
    accompanying_id = Int(allow_none=True)


class QueueForm(FormSchema):
    until = Date()


class TemplateCopyForm(FormSchema):
    source_id = Int(required=True)
    code = Str(required=True, validate=length(40, 1))
    name = Str(validate=length(200, 1))
