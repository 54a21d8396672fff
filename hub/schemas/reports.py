"""Reports (compte-rendus): what the performer writes, what the API and the pages show, with the deliveries."""

import datetime as dt
import json

from marshmallow import Schema, fields, validate

from hub.models import (
    RECIPIENT_ROLE_LABELS,
    REPORT_KIND_LABELS,
    REPORT_STATE_LABELS,
    Delivery,
    DeliveryState,
    Modality,
    RecipientRole,
    Report,
    ReportKind,
    ReportState,
    delivery_label,
    unacknowledged,
)
from hub.schemas.base import Bool, Date, Enum, FormSchema, InputSchema, Int, Str, length

MAX_TEXT = 20_000


class ReportStartIn(InputSchema):
    """The session whose report the performer begins (or gets back, when the draft exists)."""

    # Within the database's integer range: a larger id is a 422, never a database error.
    appointment_id = Int(required=True, validate=validate.Range(1, 2**31 - 1, error="Identifiant invalide."))


class ReportUpdateIn(InputSchema):
    """A draft's fields; a blank text clears the field."""

    acts = Str(allow_none=True, validate=length(MAX_TEXT))
    prescriptions = Str(allow_none=True, validate=length(MAX_TEXT))
    technical_incidents = Str(allow_none=True, validate=length(MAX_TEXT))
    conclusion = Str(allow_none=True, validate=length(MAX_TEXT))
    follow_up = Str(allow_none=True, validate=length(MAX_TEXT))
    follow_up_modality = Enum(Modality, by_value=True, allow_none=True)
    copy_participants = Bool()


class ReportForm(ReportUpdateIn, FormSchema):
    action = Str(load_default="save")  # which button: "save" (the draft) or "sign"
    confirm = Bool(load_default=False)  # « Je confirme… »: the page's confirmation before « Signer et envoyer »


class DeliveryOut(Schema):
    id = fields.Integer()
    recipient_role = fields.Enum(RecipientRole, by_value=True)
    recipient_role_label = fields.Function(lambda d: RECIPIENT_ROLE_LABELS[d.recipient_role])
    channel = fields.String()
    address = fields.String()
    state = fields.Enum(DeliveryState, by_value=True)
    state_label = fields.Function(lambda d: delivery_label(d))  # « Sans accusé » once silent past the delay
    unacknowledged = fields.Function(lambda d: unacknowledged(d))
    due_at = fields.AwareDateTime()
    sent_at = fields.AwareDateTime(allow_none=True)
    acknowledged_at = fields.AwareDateTime(allow_none=True)
    refusal_code = fields.String(allow_none=True)
    refusal_text = fields.String(allow_none=True)


class RecipientOut(Schema):
    """One recipient of a report: before the signature, where it will go and by when; after, its delivery."""

    recipient_role = fields.Function(lambda r: r.role.value)
    recipient_role_label = fields.Function(lambda r: RECIPIENT_ROLE_LABELS[r.role])
    name = fields.String()
    channel = fields.String()
    address = fields.String()
    due_at = fields.AwareDateTime()
    delivery_id = fields.Function(lambda r: r.delivery.id if r.delivery else None)
    state = fields.Function(lambda r: r.delivery.state.value if r.delivery else "planned")
    state_label = fields.Function(lambda r: delivery_label(r.delivery) if r.delivery else "Envoyé à la signature")
    sent_at = fields.AwareDateTime(allow_none=True)


class SessionDayArgs(InputSchema):
    """GET /me/session?day=…: the day asked, else the professional's session day."""

    day = Date(allow_none=True)


class WorklistRowOut(Schema):
    """A patient of « Ma séance »: the appointment, what brought them (referrals) and what the IDEL traced."""

    appointment_id = fields.Function(lambda r: r.appointment.id)
    starts_at = fields.Function(lambda r: r.appointment.starts_at.isoformat())
    ends_at = fields.Function(lambda r: r.appointment.ends_at.isoformat())
    state = fields.Function(lambda r: r.appointment.state.value)
    patient_id = fields.Function(lambda r: r.appointment.patient_id)
    patient_age = fields.Integer(attribute="age")
    accompanying_id = fields.Function(lambda r: r.appointment.accompanying_id)
    identity_checked_at = fields.Function(
        lambda r: r.appointment.identity_checked_at.isoformat() if r.appointment.identity_checked_at else None
    )
    identity_checked_by = fields.String(allow_none=True)
    identity_check_method = fields.Function(lambda r: r.appointment.identity_check_method)
    patient_location = fields.Function(lambda r: r.appointment.patient_location)
    callback_phone = fields.Function(lambda r: r.appointment.callback_phone)
    checklist = fields.List(fields.String(), attribute="checks")
    referral_ids = fields.Function(lambda r: [referral.id for referral in r.referrals])
    attachment_ids = fields.Function(lambda r: [a.id for referral in r.referrals for a in referral.attachments])
    report_id = fields.Function(lambda r: r.report.id if r.report else None)
    report_state = fields.Function(lambda r: r.report.state.value if r.report else None)
    can_start_report = fields.Boolean(attribute="can_start")


class SessionDayOut(Schema):
    day = fields.Date()
    items = fields.List(fields.Nested(WorklistRowOut))


# Built once, as the API's schemas (hub.api.reports): the construction costs a fifth of a millisecond per report read.
_DELIVERIES = DeliveryOut(many=True)


class ReportOut(Schema):
    id = fields.Integer()
    kind = fields.Enum(ReportKind, by_value=True)
    kind_label = fields.Function(lambda r: REPORT_KIND_LABELS[r.kind])
    loinc = fields.String()
    state = fields.Enum(ReportState, by_value=True)
    state_label = fields.Function(lambda r: REPORT_STATE_LABELS[r.state])
    version = fields.Integer()
    root_id = fields.Integer(allow_none=True)
    supersedes_id = fields.Integer(allow_none=True)
    superseded_at = fields.AwareDateTime(allow_none=True)
    patient_id = fields.Integer()
    author_id = fields.Integer()
    appointment_id = fields.Integer(allow_none=True)
    performed_at = fields.AwareDateTime()
    acts = fields.String()
    prescriptions = fields.String(allow_none=True)
    technical_incidents = fields.String(allow_none=True)
    conclusion = fields.String()
    follow_up = fields.String(allow_none=True)
    follow_up_modality = fields.String(allow_none=True)
    copy_participants = fields.Boolean()
    participant_ids = fields.Function(lambda r: json.loads(r.participant_ids or "[]"))
    document_uid = fields.String(allow_none=True)
    content_sha256 = fields.String(allow_none=True)  # the signed content's hash, set at the signature
    # Signed, the PDF and the CDA still being rendered by the worker: « document en préparation ».
    document_pending = fields.Boolean()
    # Still pending after a failed rendering: the coordination sees it in its « en retard » list, the worker retries.
    document_failed = fields.Boolean()
    # A correction is rendered, and so sent, only after the earlier versions still to render (R7): the version it
    # waits for, null when it does not wait, and whether that version's rendering fails (its own never started).
    document_waits_for_version = fields.Method("_waits_for_version", allow_none=True)
    document_waits_for_failed = fields.Method("_waits_for_failed")
    pdf_sha256 = fields.String(allow_none=True)
    pdf_size = fields.Integer(allow_none=True)
    signed_at = fields.AwareDateTime(allow_none=True)
    sent_at = fields.AwareDateTime(allow_none=True)
    acknowledged_at = fields.AwareDateTime(allow_none=True)
    # A draft, or a report whose documents are being rendered, has no delivery yet: not asked of the database.
    deliveries = fields.Method("_deliveries")

    def __init__(self, *, waits_for: Report | None = None, **kwargs):
        """`waits_for`: the earlier version the dumped report waits for (workflows.reports.rendering_wait)."""
        super().__init__(**kwargs)
        self.waits_for = waits_for

    def _waits_for_version(self, _report: Report) -> int | None:
        return self.waits_for.version if self.waits_for else None

    def _waits_for_failed(self, _report: Report) -> bool:
        return bool(self.waits_for and self.waits_for.document_failed)

    def _deliveries(self, report: Report) -> list[dict]:
        if report.state is ReportState.DRAFT or report.document_pending:
            return []
        return _DELIVERIES.dump(report.deliveries)


def report_out(report: Report, *, waits_for: Report | None = None) -> dict:
    """`ReportOut(waits_for=waits_for).dump(report)`, field for field and in its order (a test compares the two):
    marshmallow's dump cost about a tenth of each report request's CPU (the draft, its PATCH, GET, the signature;
    issue 17, P7)."""
    r = report
    pending = r.document_pending
    return {
        "id": r.id,
        "kind": r.kind.value,
        "kind_label": REPORT_KIND_LABELS[r.kind],
        "loinc": r.loinc,
        "state": r.state.value,
        "state_label": REPORT_STATE_LABELS[r.state],
        "version": r.version,
        "root_id": r.root_id,
        "supersedes_id": r.supersedes_id,
        "superseded_at": _iso(r.superseded_at),
        "patient_id": r.patient_id,
        "author_id": r.author_id,
        "appointment_id": r.appointment_id,
        "performed_at": _iso(r.performed_at),
        "acts": r.acts,
        "prescriptions": r.prescriptions,
        "technical_incidents": r.technical_incidents,
        "conclusion": r.conclusion,
        "follow_up": r.follow_up,
        "follow_up_modality": r.follow_up_modality,
        "copy_participants": r.copy_participants,
        "participant_ids": json.loads(r.participant_ids or "[]"),
        "document_uid": r.document_uid,
        "content_sha256": r.content_sha256,
        "document_pending": pending,
        "document_failed": r.document_failed,
        "document_waits_for_version": waits_for.version if waits_for else None,
        "document_waits_for_failed": bool(waits_for and waits_for.document_failed),
        "pdf_sha256": r.pdf_sha256,
        "pdf_size": r.pdf_size,
        "signed_at": _iso(r.signed_at),
        "sent_at": _iso(r.sent_at),
        "acknowledged_at": _iso(r.acknowledged_at),
        # A draft, or a report whose documents are being rendered, has no delivery yet: not asked of the database.
        "deliveries": [] if r.state is ReportState.DRAFT or pending else [delivery_out(d) for d in r.deliveries],
    }


def delivery_out(delivery: Delivery) -> dict:
    """`DeliveryOut().dump(delivery)`, field for field and in its order (`report_out`'s deliveries)."""
    d = delivery
    return {
        "id": d.id,
        "recipient_role": d.recipient_role.value,
        "recipient_role_label": RECIPIENT_ROLE_LABELS[d.recipient_role],
        "channel": d.channel,
        "address": d.address,
        "state": d.state.value,
        "state_label": delivery_label(d),
        "unacknowledged": unacknowledged(d),
        "due_at": _iso(d.due_at),
        "sent_at": _iso(d.sent_at),
        "acknowledged_at": _iso(d.acknowledged_at),
        "refusal_code": d.refusal_code,
        "refusal_text": d.refusal_text,
    }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()
