"""Attendance and video link, both ways (workflows.attendance, workflows.video)."""

from marshmallow import Schema, fields

from hub.schemas.base import Bool, FormSchema, InputSchema, Str, length

MAX_NOTE = 500  # the column's length (hub.models.Attendance.note)
ANSWER_REQUIRED: dict[str, str | list | dict] = {"required": "Répondez oui ou non.", "null": "Répondez oui ou non."}


class AttendanceIn(InputSchema):
    """Who was there: `accompanying` is left out (or null) when nobody accompanies the session."""

    patient = Bool(required=True, error_messages=ANSWER_REQUIRED)
    accompanying = Bool(load_default=None, allow_none=True)
    performer = Bool(required=True, error_messages=ANSWER_REQUIRED)
    note = Str(load_default=None, allow_none=True, validate=length(MAX_NOTE))


class AttendanceForm(AttendanceIn, FormSchema):
    pass


class AttendanceOut(Schema):
    """Dumped from a dict (hub.api.attendance): the answers, None before anyone recorded them."""

    appointment_id = fields.Integer()
    state = fields.String()
    has_accompanying = fields.Boolean()
    recorded = fields.Boolean()
    patient = fields.Boolean(allow_none=True)
    accompanying = fields.Boolean(allow_none=True)
    performer = fields.Boolean(allow_none=True)
    note = fields.String(allow_none=True)
    recorded_at = fields.DateTime(allow_none=True)


class VideoOut(Schema):
    appointment_id = fields.Integer()
    status = fields.String()
    opens_at = fields.DateTime(allow_none=True)
    closes_at = fields.DateTime(allow_none=True)
    url = fields.String(allow_none=True)
    patient_link_sent_at = fields.DateTime(allow_none=True)
