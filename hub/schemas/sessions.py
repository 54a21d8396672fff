"""What happens in a session: the six rituals of a kiné's télésoin session and the session's incidents. Input
schemas (shape only), page forms, and what the API shows."""

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from hub.models import (
    INCIDENT_KIND_LABELS,
    INCIDENT_SEVERITY_LABELS,
    MAX_PROMS,
    IncidentKind,
    IncidentSeverity,
)
from hub.schemas.base import Bool, Enum, FormSchema, InputSchema, List, Str, length

PROM_NAME, PROM_VALUE = 120, 60


class PromIn(InputSchema):
    """One patient-reported outcome measure of the initial measure: its name and the value measured."""

    name = Str(required=True, validate=length(PROM_NAME, 1), metadata={"description": "ex. EVA douleur, KOOS, CAT"})
    value = Str(required=True, validate=length(PROM_VALUE, 1), metadata={"description": "ex. 6/10, 42"})


class RitualsIn(InputSchema):
    """The session's rituals, recorded whole each time (what is left out is not done); see hub.models.rituals."""

    opening_brief = Bool(load_default=False)
    telesoin_consent = Bool(load_default=False)
    safety_privacy = Bool(load_default=False)
    proms = List(
        fields.Nested(PromIn),
        load_default=list,
        validate=validate.Length(max=MAX_PROMS, error=f"Au plus {MAX_PROMS} PROMs."),
    )
    stop_criteria = Str(allow_none=True, validate=length(500))
    teach_back = Bool(load_default=False)
    structured_feedback = Bool(load_default=False)
    feedback_notes = Str(allow_none=True, validate=length(1000))
    plan = Str(allow_none=True, validate=length(1000))
    reinforcement_message = Bool(load_default=False)


class RitualsForm(FormSchema):
    """The page's form: the PROMs as two pairs of fields, each pair filled whole or left empty."""

    opening_brief = Bool(load_default=False)  # an unticked box is not sent
    telesoin_consent = Bool(load_default=False)
    safety_privacy = Bool(load_default=False)
    prom_1_name = Str(validate=length(PROM_NAME))
    prom_1_value = Str(validate=length(PROM_VALUE))
    prom_2_name = Str(validate=length(PROM_NAME))
    prom_2_value = Str(validate=length(PROM_VALUE))
    stop_criteria = Str(validate=length(500))
    teach_back = Bool(load_default=False)
    structured_feedback = Bool(load_default=False)
    feedback_notes = Str(validate=length(1000))
    plan = Str(validate=length(1000))
    reinforcement_message = Bool(load_default=False)

    @validates_schema
    def _pairs_are_whole(self, data, **_kwargs):
        errors = {}
        for n in range(1, MAX_PROMS + 1):
            name, value = data.get(f"prom_{n}_name"), data.get(f"prom_{n}_value")
            if name and not value:
                errors[f"prom_{n}_value"] = "Indiquez la valeur mesurée."
            elif value and not name:
                errors[f"prom_{n}_name"] = "Indiquez le nom du PROM."
        if errors:
            raise ValidationError(errors)

    @post_load
    def _to_proms(self, data, **_kwargs):
        pairs = [(data.pop(f"prom_{n}_name", None), data.pop(f"prom_{n}_value", None)) for n in range(1, MAX_PROMS + 1)]
        data["proms"] = [{"name": name, "value": value} for name, value in pairs if name]
        return data


def form_values(record: dict) -> dict:
    """The page's form filled with a recorded session's rituals."""
    values = {name: value for name, value in record.items() if name != "proms"}
    for n, prom in enumerate(record.get("proms", []), start=1):
        values |= {f"prom_{n}_name": prom["name"], f"prom_{n}_value": prom["value"]}
    return values


class PromOut(Schema):
    name = fields.String()
    value = fields.String()


class RitualsOut(Schema):
    """A session's rituals as recorded, and what they still lack before the session can be done."""

    opening_brief = fields.Function(lambda r: bool(r.record.get("opening_brief")))
    telesoin_consent = fields.Function(lambda r: bool(r.record.get("telesoin_consent")))
    safety_privacy = fields.Function(lambda r: bool(r.record.get("safety_privacy")))
    proms = fields.Function(lambda r: PromOut(many=True).dump(r.record.get("proms", [])))
    stop_criteria = fields.Function(lambda r: r.record.get("stop_criteria"))
    teach_back = fields.Function(lambda r: bool(r.record.get("teach_back")))
    structured_feedback = fields.Function(lambda r: bool(r.record.get("structured_feedback")))
    feedback_notes = fields.Function(lambda r: r.record.get("feedback_notes"))
    plan = fields.Function(lambda r: r.record.get("plan"))
    reinforcement_message = fields.Function(lambda r: bool(r.record.get("reinforcement_message")))
    recorded_at = fields.AwareDateTime(allow_none=True)
    missing = fields.List(fields.String(), metadata={"description": "Ce qui manque pour terminer la séance."})
    is_complete = fields.Function(lambda r: not r.missing)


class IncidentIn(InputSchema):
    kind = Enum(IncidentKind, by_value=True, required=True)
    # Required but for an EIG, grave by definition: the workflow says which.
    severity = Enum(IncidentSeverity, by_value=True)
    description = Str(required=True, validate=length(2000, 1))


class IncidentForm(IncidentIn, FormSchema):
    pass


class IncidentOut(Schema):
    id = fields.Integer()
    appointment_id = fields.Integer()
    patient_id = fields.Function(lambda i: i.appointment.patient_id)
    session_starts_at = fields.Function(lambda i: i.appointment.starts_at.isoformat())
    kind = fields.Enum(IncidentKind, by_value=True)
    kind_label = fields.Function(lambda i: INCIDENT_KIND_LABELS[i.kind])
    severity = fields.Enum(IncidentSeverity, by_value=True)
    severity_label = fields.Function(lambda i: INCIDENT_SEVERITY_LABELS[i.severity])
    is_serious = fields.Boolean()
    description = fields.String()
    recorded_by_user_id = fields.Integer()
    recorded_by = fields.Function(lambda i: i.recorded_by.display_name)
    recorded_at = fields.AwareDateTime()
