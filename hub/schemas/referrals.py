"""Referrals (adressages): what a GP sends, what the coordination answers, what the API returns."""

import json

from marshmallow import Schema, ValidationError, fields, validates_schema

from hub.formatting import file_size, french_date, french_datetime
from hub.models import (
    ATTACHMENT_KIND_LABELS,
    CONSENT_KIND_LABELS,
    CONSENT_METHOD_LABELS,
    REFERRAL_STATE_LABELS,
    URGENCY_LABELS,
    AttachmentKind,
    PlaceKind,
    ReferralState,
    Urgency,
)
from hub.schemas.base import Bool, Date, Enum, FormSchema, InputSchema, Int, List, Str, length
from hub.schemas.patient import PatientIn


class ReferralUpdateIn(InputSchema):
    """A draft's letter, target, urgency and needs; its patient stays."""

    target_program_id = Int(allow_none=True)
    target_specialist_id = Int(allow_none=True)
    reason = Str(validate=length(4000))
    current_treatment = Str(validate=length(4000))
    history = Str(validate=length(4000))
    free_text = Str(validate=length(4000))
    urgency = Enum(Urgency, by_value=True)
    needs = List(Str(validate=length(40)))


class ReferralIn(ReferralUpdateIn):
    """A patient the GP can see (`patient_id`), or a new one (`patient`: at least the strict traits), created
    unless a possible duplicate is found — a 409 listing the candidates the GP may see, which
    `confirm_new_patient` sets aside; one outside their care sends them to the coordination."""

    patient_id = Int()
    patient = fields.Nested(PatientIn)
    confirm_new_patient = Bool(load_default=False)

    @validates_schema
    def _one_patient(self, data, **_kwargs):
        if ("patient_id" in data) == ("patient" in data):
            raise ValidationError(
                "Indiquez le patient : patient_id (existant) ou patient (nouveau, traits stricts), l'un des deux.",
                "patient_id",
            )


# The strict traits (and NIR) of a patient created from the « Nouvel adressage » form, loaded with
# hub.schemas.patient.PatientForm(only=NEW_PATIENT_FIELDS).
NEW_PATIENT_FIELDS = ("birth_name", "first_birth_given_name", "birth_date", "sex", "birth_place_insee", "ins_matricule")


class ReferralForm(ReferralUpdateIn, FormSchema):
    """The form: an existing patient, or the new patient's traits (checked by PatientIn when given); after a
    possible duplicate, the candidate picked or the confirmation that it is another person."""

    patient_id = Int()
    candidate_id = Int()
    duplicates_checked = Bool(load_default=False)
    consent_collected_on = Date()
    submit = Str()  # which button: "draft" or "send"


class SubmitIn(InputSchema):
    consent_collected_on = Date()


class SubmitForm(SubmitIn, FormSchema):
    pass


class ReferralStateArgs(FormSchema):
    """« Mes adressages » in one state (`?state=submitted`)."""

    state = Enum(ReferralState, by_value=True, allow_none=True)


class ScheduleIn(InputSchema):
    """The slot, the place (by default the one the patient's needs call for: home for reduced mobility, else
    the program's) and the accompanying professional (by default the patient's own IDEL, if any)."""

    slot_id = Int(required=True)
    place_kind = Enum(PlaceKind, by_value=True, allow_none=True)
    accompanying_id = Int(allow_none=True)


class ScheduleForm(ScheduleIn, FormSchema):
    pass


class CandidatesArgs(FormSchema):
    """`?slot=` (required by the API; the referral page takes the first free one) and `place_kind=` (by default
    the one the patient's needs call for)."""

    slot = Int(allow_none=True)
    place_kind = Enum(PlaceKind, by_value=True, allow_none=True)


class CandidateOut(Schema):
    professional_id = fields.Function(lambda c: c.professional.id)
    name = fields.Function(lambda c: c.professional.full_name)
    profession = fields.Function(lambda c: c.professional.profession.value)
    commune = fields.String()
    distance_km = fields.Function(lambda c: None if c.distance_km is None else round(c.distance_km, 1))
    distance_label = fields.String()
    reason = fields.String()
    is_own = fields.Boolean()
    visits_this_month = fields.Integer()
    pending_offers = fields.Integer()


class CandidatesOut(Schema):
    """The accompanying professionals free at a slot, best first, at the place asked or the one suggested."""

    slot_id = fields.Integer()
    place_kind = fields.String()
    place_label = fields.String()
    own_idel_note = fields.String(allow_none=True)
    items = fields.List(fields.Nested(CandidateOut))


class AppointmentCandidatesOut(Schema):
    """The IDELs who may take over a booked visit, best first, and why the patient's own IDEL is not among them."""

    appointment_id = fields.Integer()
    own_idel_note = fields.String(allow_none=True)
    items = fields.List(fields.Nested(CandidateOut))


def candidates_out(appointment_id: int, suggestions) -> dict:
    """`AppointmentCandidatesOut().dump(…)` of a booked visit's suggestions (workflows.accompaniment.Suggestions),
    field for field and in its order (a test compares the two): marshmallow's dump of the nested list cost as much
    CPU as the ranking itself (issue 17, P7)."""
    return {
        "appointment_id": appointment_id,
        "own_idel_note": suggestions.own_note,
        "items": [_candidate_out(candidate) for candidate in suggestions.candidates],
    }


def _candidate_out(candidate) -> dict:
    """CandidateOut's dump of a ranked professional (workflows.idel_ranking.RankedProfessional)."""
    professional = candidate.professional
    distance = candidate.distance_km
    return {
        "professional_id": professional.id,
        "name": professional.full_name,
        "profession": professional.profession.value,
        "commune": candidate.commune,
        "distance_km": None if distance is None else round(distance, 1),
        "distance_label": candidate.distance_label,
        "reason": candidate.reason,
        "is_own": candidate.is_own,
        "visits_this_month": candidate.visits_this_month,
        "pending_offers": candidate.pending_offers,
    }


class AttachmentKindIn(InputSchema):
    """The form fields of an upload; the file itself is read by the view (hub.documents.store checks it)."""

    kind = Enum(AttachmentKind, by_value=True, required=True)


class AttachmentIn(AttachmentKindIn):
    """multipart/form-data: `file` (PDF, PNG or JPEG, checked by content) and its `kind` (for OpenAPI)."""

    file = fields.Raw(
        required=True,
        error_messages={"required": "Ce champ est obligatoire."},
        metadata={"type": "string", "format": "binary"},
    )


class AttachmentOut(Schema):
    id = fields.Integer()
    kind = fields.Enum(AttachmentKind, by_value=True)
    kind_label = fields.Function(lambda a: ATTACHMENT_KIND_LABELS[a.kind])
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    size_label = fields.Function(lambda a: file_size(a.size))
    sha256 = fields.String()
    uploaded_at = fields.AwareDateTime()


class ReferralOut(Schema):
    id = fields.Integer()
    state = fields.Enum(ReferralState, by_value=True)
    state_label = fields.Function(lambda r: REFERRAL_STATE_LABELS[r.state])
    patient_id = fields.Integer()
    author_id = fields.Integer()
    target_program_id = fields.Integer(allow_none=True)
    target_specialist_id = fields.Integer(allow_none=True)
    reason = fields.String()
    current_treatment = fields.String(allow_none=True)
    history = fields.String(allow_none=True)
    free_text = fields.String(allow_none=True)
    urgency = fields.Enum(Urgency, by_value=True)
    urgency_label = fields.Function(lambda r: URGENCY_LABELS[r.urgency])
    needs = fields.Function(lambda r: json.loads(r.needs or "[]"))
    consent_id = fields.Integer(allow_none=True)
    rejection_reason = fields.String(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    appointment_id = fields.Integer(allow_none=True)
    # Filled by dump_referral from the referral's appointment (absent until it is scheduled).
    appointment_starts_at = fields.String(allow_none=True)
    scheduled_label = fields.String(allow_none=True)
    submitted_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()
    attachments = fields.List(fields.Nested(AttachmentOut))


class ConsentSummaryOut(Schema):
    """The consent the referral was sent with: its kind and the day it was collected, in words too."""

    id = fields.Integer()
    kind = fields.Function(lambda c: c.kind.value)
    kind_label = fields.Function(lambda c: CONSENT_KIND_LABELS[c.kind])
    method_label = fields.Function(lambda c: CONSENT_METHOD_LABELS[c.method])
    collected_on = fields.Date()
    collected_on_label = fields.Function(lambda c: french_date(c.collected_on))
    is_valid = fields.Boolean()


class HistoryEntryOut(Schema):
    at = fields.AwareDateTime()
    label = fields.String()
    by = fields.String()


class ReferralDetailOut(Schema):
    """What the referral's page shows, beyond the referral itself (workflows.referrals.ReferralDetail)."""

    needs_labels = fields.List(fields.String())
    consent = fields.Nested(ConsentSummaryOut, allow_none=True)
    # The referral's states over time (its `history` field is the letter's medical history).
    events = fields.List(fields.Nested(HistoryEntryOut))
    target_program_name = fields.Function(lambda d: d.program.name if d.program else None)


class ReferralPageOut(ReferralOut, ReferralDetailOut):
    """`GET /api/v1/referrals/<id>`: the referral and what its page shows (dump_referral with its detail)."""


def scheduled_label(appointment, zone: str) -> str | None:
    """« programmé le lundi 23 novembre 2026, 14 h 00 »."""
    return f"programmé le {french_datetime(appointment.starts_at, zone)}" if appointment is not None else None


def dump_referral(referral, appointment, zone: str, *, detail=None) -> dict:
    """The referral; with its `detail` (workflows.referrals.detail), what its page shows too."""
    body = ReferralOut().dump(referral)
    if detail is not None:
        body |= ReferralDetailOut().dump(detail)
    if appointment is not None:
        body["appointment_starts_at"] = appointment.starts_at.isoformat()
        body["scheduled_label"] = scheduled_label(appointment, zone)
    return body
