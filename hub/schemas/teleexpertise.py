"""Téléexpertise requests: what a requester sends, what an expert answers, what the API returns."""

import base64
import binascii

from marshmallow import Schema, ValidationError, fields, validate

from hub.models import TELEEXPERTISE_STATE_LABELS, TeleexpertiseState, Urgency
from hub.schemas.base import AwareDateTime, Bool, Date, Enum, FormSchema, InputSchema, Int, List, Str, length

MAX_ATTACHMENTS = 5  # as workflows.teleexpertise checks it again


class Base64(Str):
    """Bytes sent as standard base64 text (an attachment inside a JSON body)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValidationError("Contenu base64 invalide.") from exc


class AttachmentUploadIn(InputSchema):
    """A file inside the JSON body: its name and its content in base64 (PDF, PNG or JPEG, checked by content)."""

    filename = Str(required=True, validate=length(200, 1))
    content = Base64(required=True)


class _RequestFields(InputSchema):
    patient_id = Int(required=True)
    expert_id = Int(allow_none=True)
    specialty = Str(allow_none=True, validate=length(100))
    question = Str(required=True, validate=length(4000, 1))
    context = Str(allow_none=True, validate=length(8000))
    urgency = Enum(Urgency, by_value=True, load_default=Urgency.ROUTINE)
    acknowledge_over_cap = Bool(load_default=False)


class TeleexpertiseIn(_RequestFields):
    """The deadline is an instant with its offset, or absent (then set by the urgency); attachments in base64."""

    deadline_at = AwareDateTime(allow_none=True)
    attachments = List(
        fields.Nested(AttachmentUploadIn),
        load_default=list,
        validate=validate.Length(max=MAX_ATTACHMENTS, error=f"Au plus {MAX_ATTACHMENTS} pièces jointes."),
    )


class TeleexpertiseForm(_RequestFields, FormSchema):
    """The page's form: the deadline is a local day; the files come as multipart parts."""

    deadline_on = Date(allow_none=True)


class AssignIn(InputSchema):
    """No expert: the caller takes the request. An expert: the coordination assigns it to them."""

    expert_id = Int(allow_none=True)


class AssignForm(AssignIn, FormSchema):
    pass


class DeclineIn(InputSchema):
    reason = Str(required=True, validate=length(500, 1))


class DeclineForm(DeclineIn, FormSchema):
    pass


class AnswerIn(InputSchema):
    """The expert's answer: the draft's fields; `sign` signs and sends it in the same call."""

    conclusion = Str(required=True, validate=length(20000, 1))
    recommendations = Str(allow_none=True, validate=length(20000))
    sign = Bool(load_default=False)


class AnswerForm(FormSchema):
    conclusion = Str(allow_none=True, validate=length(20000))
    recommendations = Str(allow_none=True, validate=length(20000))
    action = Str()  # which button: "save" or "sign"


class TeleexpertiseAttachmentOut(Schema):
    id = fields.Integer()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    uploaded_at = fields.AwareDateTime()


class AnswerOut(Schema):
    id = fields.Integer()
    state = fields.Function(lambda r: r.state.value)
    conclusion = fields.String()
    recommendations = fields.String(attribute="follow_up", allow_none=True)
    signed_at = fields.AwareDateTime(allow_none=True)
    document_uid = fields.String(allow_none=True)


class TeleexpertiseOut(Schema):
    id = fields.Integer()
    state = fields.Enum(TeleexpertiseState, by_value=True)
    state_label = fields.Function(lambda r: TELEEXPERTISE_STATE_LABELS[r.state])
    patient_id = fields.Integer()
    requester_id = fields.Integer()
    expert_id = fields.Integer(allow_none=True)
    specialty = fields.String(allow_none=True)
    consent_id = fields.Integer()
    question = fields.String()
    context = fields.String(allow_none=True)
    deadline_at = fields.AwareDateTime()
    decline_reason = fields.String(allow_none=True)
    answer_report_id = fields.Integer(allow_none=True)
    document_uid = fields.String(allow_none=True)
    over_cap_acknowledged = fields.Boolean()
    submitted_at = fields.AwareDateTime()
    assigned_at = fields.AwareDateTime(allow_none=True)
    answered_at = fields.AwareDateTime(allow_none=True)
    closed_at = fields.AwareDateTime(allow_none=True)
    attachments = fields.List(fields.Nested(TeleexpertiseAttachmentOut))
    # Filled by the API from the answer report when there is one and the caller may read it.
    answer = fields.Nested(AnswerOut, allow_none=True)
