"""Programs, slots and appointments: input schemas (shape only), page forms, and what the API shows."""

import datetime as dt
import json
from decimal import Decimal, InvalidOperation

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from hub.identifiers import check_phone
from hub.models import (
    MAX_CAPACITY,
    MAX_REPORT_DELAY_HOURS,
    MIN_REPORT_DELAY_HOURS,
    PROGRAM_DEFAULTS,
    AppointmentKind,
    AppointmentState,
    ConsentMethod,
    PlaceKind,
    ProgramKind,
    TelesoinActCode,
    appointment_state_label,
)
from hub.models.scheduling import state_label, telesoin_act_label
from hub.schemas.base import (
    AwareDateTime,
    Bool,
    Date,
    Enum,
    FormSchema,
    Identifier,
    InputSchema,
    Int,
    Str,
    check_day,
    length,
)
from scheduling import board
from scheduling.recurrence import DAYS, WEEKDAY_CODES, InvalidRecurrence, parse_rrule

WEEKDAY_LABELS = dict(zip(WEEKDAY_CODES, DAYS, strict=True))
RULE_CHOICES = {
    "weekly": "Chaque semaine le …",
    "biweekly": "Une semaine sur deux le …",
    "monthly_first": "Le premier … du mois",
    "advanced": "Avancé : règle RRULE (RFC 5545)",
}
_RULE_TEMPLATES = {
    "weekly": "FREQ=WEEKLY;BYDAY={day}",
    "biweekly": "FREQ=WEEKLY;INTERVAL=2;BYDAY={day}",
    "monthly_first": "FREQ=MONTHLY;BYDAY=1{day}",
}
IDENTITY_METHODS = {
    "document": "Pièce d'identité contrôlée",
    "ins": "INS vérifié (téléservice INSi)",
    "traits": "Traits d'identité confirmés avec le patient",
}
CHECKLIST_LABELS = {
    "camera": "Caméra testée",
    "sound": "Son testé",
    "light": "Éclairage suffisant",
    "privacy": "Confidentialité assurée",
    "adult_present": "Un adulte accompagne le patient (obligatoire pour un mineur)",
}


def _range(low: int, high: int) -> validate.Range:
    return validate.Range(min=low, max=high, error=f"Entre {low} et {high}.")


def _one_of(choices) -> validate.OneOf:
    return validate.OneOf(list(choices), error="Choix invalide.")


def _valid_rrule(value: str) -> None:
    try:
        parse_rrule(value)
    except InvalidRecurrence as exc:
        raise ValidationError(str(exc)) from exc


class Time(fields.Time):
    default_error_messages = {
        "required": "Ce champ est obligatoire.",
        "null": "Ce champ ne peut pas être vide.",
        "invalid": "Heure invalide (format attendu : HH:MM).",
        "format": "Heure invalide.",
    }


class DayOrInstant(fields.Field):
    """A date (`2027-03-01`, a local day) or an instant with its offset (`2027-03-01T14:00:00+01:00`)."""

    default_error_messages = {
        "invalid": "Date (AAAA-MM-JJ) ou date et heure avec fuseau (ISO 8601) attendue.",
        "invalid_awareness": "Indiquez le fuseau horaire (par exemple +01:00 ou Z).",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            if isinstance(value, str) and len(value) == 10:
                day = dt.date.fromisoformat(value)
                check_day(day)
                return day
            instant = dt.datetime.fromisoformat(value)
        except (TypeError, ValueError) as exc:
            raise self.make_error("invalid") from exc
        if instant.tzinfo is None:
            raise self.make_error("invalid_awareness")
        check_day(instant)
        return instant


# --- programs ---------------------------------------------------------------------------------------------


class ProgramIn(InputSchema):
    name = Str(required=True, validate=length(200, 2))
    kind = Enum(ProgramKind, by_value=True, required=True)
    performer_id = Int(required=True)
    organisation_id = Int(allow_none=True)
    room_id = Int(allow_none=True)
    kit_id = Int(allow_none=True)
    rrule = Str(required=True, validate=[length(300, 1), _valid_rrule])
    first_day = Date(required=True)
    time_of_day = Time(required=True)
    valid_until = Date(allow_none=True)
    slot_count = Int(required=True, validate=_range(1, 40))
    slot_minutes = Int(required=True, validate=_range(5, 240))
    # Minutes between two slot starts, empty for back to back; at least the slot (checked with the shape).
    slot_interval_minutes = Int(
        load_default=PROGRAM_DEFAULTS["slot_interval_minutes"], allow_none=True, validate=_range(5, 12 * 60)
    )
    accompaniment_before_minutes = Int(
        load_default=PROGRAM_DEFAULTS["accompaniment_before_minutes"], validate=_range(0, 120)
    )
    accompaniment_after_minutes = Int(
        load_default=PROGRAM_DEFAULTS["accompaniment_after_minutes"], validate=_range(0, 120)
    )
    skip_public_holidays = Bool(load_default=PROGRAM_DEFAULTS["skip_public_holidays"])
    own_idel_delay_minutes = Int(
        load_default=PROGRAM_DEFAULTS["own_idel_delay_minutes"], validate=_range(0, 7 * 24 * 60)
    )
    horizon_weeks = Int(load_default=PROGRAM_DEFAULTS["horizon_weeks"], validate=_range(1, 104))
    report_delay_doctors_hours = Int(
        load_default=PROGRAM_DEFAULTS["report_delay_doctors_hours"],
        validate=_range(MIN_REPORT_DELAY_HOURS, MAX_REPORT_DELAY_HOURS),
    )
    report_delay_patient_hours = Int(
        load_default=PROGRAM_DEFAULTS["report_delay_patient_hours"],
        validate=_range(MIN_REPORT_DELAY_HOURS, MAX_REPORT_DELAY_HOURS),
    )
    # The certified teleconsultation tool's address with {room} (checked by workflows.video.check_template).
    video_url_template = Str(allow_none=True, validate=length(300))
    # Participants per slot: above 1, a group session (group therapeutic education, group rehabilitation).
    capacity = Int(load_default=PROGRAM_DEFAULTS["capacity"], validate=_range(1, MAX_CAPACITY))


class ProgramSeriesIn(ProgramIn):
    """A change of the whole series from now on (loaded partial: only the fields sent). The kind, the
    performer, the first day and the capacity of a series stay; a new performer is a new program."""

    class Meta(InputSchema.Meta):
        exclude = ("kind", "performer_id", "first_day", "capacity")


class _RuleChoice(FormSchema):
    """The rule chosen from simple choices ("chaque semaine le lundi"…), or typed as a raw RRULE."""

    rule = Str(required=True, validate=_one_of(RULE_CHOICES))
    weekday = Str(allow_none=True, validate=_one_of(WEEKDAY_CODES))
    rrule = Str(allow_none=True, validate=length(300))

    @validates_schema(skip_on_field_errors=False)
    def _rule_is_complete(self, data, **_kwargs):
        rule = data.get("rule")
        if rule == "advanced" and not data.get("rrule"):
            raise ValidationError("Saisissez la règle (par exemple FREQ=WEEKLY;BYDAY=MO).", "rrule")
        if rule in _RULE_TEMPLATES and not data.get("weekday"):
            raise ValidationError("Choisissez le jour de la semaine.", "weekday")
        if rule is not None:
            _valid_rrule_field(rule_from_choice(data))

    @post_load
    def _to_rrule(self, data, **_kwargs):
        data["rrule"] = rule_from_choice(data)
        data.pop("rule", None)
        data.pop("weekday", None)
        return data


def _valid_rrule_field(value: str) -> None:
    try:
        parse_rrule(value)
    except InvalidRecurrence as exc:
        raise ValidationError(str(exc), "rrule") from exc


def rule_from_choice(data: dict) -> str:
    template = _RULE_TEMPLATES.get(data.get("rule") or "")
    return template.format(day=data["weekday"]) if template else data.get("rrule") or ""


def choice_from_rule(rrule: str) -> dict:
    """The form's values for a stored rule: a simple choice when it is one, else the advanced field."""
    for rule, template in _RULE_TEMPLATES.items():
        for day in WEEKDAY_CODES:
            if template.format(day=day) == rrule:
                return {"rule": rule, "weekday": day, "rrule": ""}
    return {"rule": "advanced", "weekday": "", "rrule": rrule}


class ProgramForm(_RuleChoice, ProgramIn):
    rrule = Str(allow_none=True, validate=length(300))
    skip_public_holidays = Bool(load_default=False)  # an unticked box is not sent


class SeriesForm(ProgramForm):
    """The series edit: the whole series, or this occurrence and the following ones."""

    scope = Str(required=True, validate=_one_of(("series", "following")))
    from_day = Date(allow_none=True)

    @validates_schema(skip_on_field_errors=False)
    def _following_needs_a_day(self, data, **_kwargs):
        if data.get("scope") == "following" and not data.get("from_day"):
            raise ValidationError("Indiquez la séance à partir de laquelle la modification s'applique.", "from_day")


SERIES_FORM_EXCLUDE = ("kind", "performer_id", "first_day", "capacity")


class OccurrenceForm(FormSchema):
    occurrence = AwareDateTime(required=True)


class OccurrenceCancelForm(OccurrenceForm):
    reason = Str(required=True, validate=length(300, 1))


class OccurrenceMoveForm(OccurrenceForm):
    new_day = Date(required=True)
    new_time = Time(required=True)


class ClosureForm(FormSchema):
    first_day = Date(required=True)
    last_day = Date(required=True)
    reason = Str(allow_none=True, validate=length(200))


class ClosureOut(Schema):
    first_day = fields.Date()
    last_day = fields.Date()
    reason = fields.String(allow_none=True)


class ProgramOut(Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.Enum(ProgramKind, by_value=True)
    performer_id = fields.Integer()
    organisation_id = fields.Integer(allow_none=True)
    room_id = fields.Integer(allow_none=True)
    room_name = fields.Function(lambda row: row.room.name if row.room else None)
    kit_id = fields.Integer(allow_none=True)
    kit_name = fields.Function(lambda row: row.kit.name if row.kit else None)
    rrule = fields.String()
    zone = fields.String()
    first_day = fields.Date(attribute="valid_from")
    time_of_day = fields.Function(lambda p: p.start_local.time().isoformat(timespec="minutes"))
    valid_until = fields.Date(allow_none=True)
    slot_count = fields.Integer()
    slot_minutes = fields.Integer()
    slot_interval_minutes = fields.Integer(allow_none=True)
    accompaniment_before_minutes = fields.Integer()
    accompaniment_after_minutes = fields.Integer()
    skip_public_holidays = fields.Boolean()
    exdates = fields.Function(lambda p: json.loads(p.exdates or "[]"))
    closures = fields.List(fields.Nested(ClosureOut))
    own_idel_delay_minutes = fields.Integer()
    horizon_weeks = fields.Integer()
    report_delay_doctors_hours = fields.Integer()
    report_delay_patient_hours = fields.Integer()
    video_url_template = fields.String(allow_none=True)
    capacity = fields.Integer()
    is_active = fields.Boolean()


class GenerationOut(Schema):
    created = fields.Integer()
    removed = fields.Integer()
    booked_no_longer_fitting = fields.Function(lambda r: [s.id for s in r.booked_no_longer_fitting])


class ProgramUpdateOut(ProgramOut):
    """The program after a series change, with what happened to its slots."""

    slots = fields.Nested(GenerationOut)


class SeriesStopOut(ProgramOut):
    """The program once its series is stopped (inactive), with the number of appointments cancelled."""

    appointments_cancelled = fields.Integer()


# --- slots ------------------------------------------------------------------------------------------------


class SlotWindowArgs(InputSchema):
    start = DayOrInstant(data_key="from")
    end = DayOrInstant(data_key="to")


class SlotOut(Schema):
    """A slot and its state: free, cancelled, or the state of the appointment holding it."""

    id = fields.Function(lambda v: v.slot.id)
    program_id = fields.Function(lambda v: v.slot.program_id)
    occurrence_start = fields.Function(lambda v: v.slot.occurrence_start.isoformat())
    starts_at = fields.Function(lambda v: v.slot.starts_at.isoformat())
    ends_at = fields.Function(lambda v: v.slot.ends_at.isoformat())
    position = fields.Function(lambda v: v.slot.position)
    is_exception = fields.Function(lambda v: v.slot.is_exception)
    state = fields.Function(lambda v: v.state)
    appointment_id = fields.Function(lambda v: v.appointment.id if v.appointment else None)
    capacity = fields.Function(lambda v: v.capacity)
    seats_left = fields.Function(lambda v: v.seats_left)
    # A group session's participants (a single-seat slot's one is its appointment_id).
    participants = fields.Function(
        lambda v: [{"appointment_id": a.id, "patient_id": a.patient_id, "state": a.state.value} for a in v.participants]
    )


def slots_out(slots: list[board.ListedSlot]) -> list[dict]:
    """The API's slot listing as SlotOut dumps it (SlotOut stays its documented schema; a test compares the two),
    built by hand: marshmallow's twelve fields per slot cost a fifth of the request."""
    return [
        {
            "id": s.id,
            "program_id": s.program_id,
            "occurrence_start": s.occurrence_start.isoformat(),
            "starts_at": s.starts_at.isoformat(),
            "ends_at": s.ends_at.isoformat(),
            "position": s.position,
            "is_exception": s.is_exception,
            "state": s.state,
            "appointment_id": s.appointment_id,
            "capacity": s.capacity,
            "seats_left": s.seats_left,
            "participants": [
                {"appointment_id": p.appointment_id, "patient_id": p.patient_id, "state": p.state.value}
                for p in s.participants
            ],
        }
        for s in slots
    ]


# --- appointments -----------------------------------------------------------------------------------------


class Coefficient(fields.Decimal):
    """The NGAP coefficient of an act: more than 0, at most 99.99, to the hundredth (`8`, `7.5`, or `7,5` as a
    French form has it)."""

    # What the field accepts, stated so that the OpenAPI document says it too.
    PATTERN = "^([1-9][0-9]?([.,][0-9]{1,2})?|0[.,](0[1-9]|[1-9][0-9]?))$"
    MAXIMUM = Decimal("99.99")
    default_error_messages = {
        "required": "Ce champ est obligatoire.",
        "null": "Ce champ ne peut pas être vide.",
        "invalid": "Coefficient invalide (un nombre, par exemple 7,5).",
        "range": "Le coefficient doit être supérieur à 0 et au plus 99,99.",
        "hundredths": "Coefficient au centième près attendu.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.make_error("invalid")
        try:
            coefficient = Decimal(str(value).replace(",", "."))
        except InvalidOperation:
            raise self.make_error("invalid") from None
        if not coefficient.is_finite():
            raise self.make_error("invalid")
        if not 0 < coefficient <= self.MAXIMUM:
            raise self.make_error("range")
        if coefficient != coefficient.quantize(Decimal("0.01")):
            raise self.make_error("hundredths")
        return coefficient


class TelesoinFields(Schema):
    """What a télésoin booking says of its act (the rules of each are workflows.fees'); nothing for the other
    sessions."""

    telesoin_act = Enum(
        TelesoinActCode,
        by_value=True,
        metadata={
            "description": "Télésoin : l'acte de la séance (IDEL : l'un des quatre actes éligibles ; kiné, "
            "orthophoniste : l'acte remplacé, jamais un bilan). Obligatoire pour un·e IDEL, un·e kiné, un·e "
            "orthophoniste."
        },
    )
    act_coefficient = Coefficient(
        metadata={
            "pattern": Coefficient.PATTERN,
            "description": "Télésoin : coefficient NGAP de l'acte remplacé (TMK ou TMI = coefficient × lettre clé) ; "
            "absent, le coefficient habituel de l'acte.",
        }
    )
    last_in_person_dressing_on = Date(
        metadata={"description": "Suivi de pansement à distance : date du dernier pansement fait en présentiel."}
    )
    last_in_person_contact_on = Date(
        metadata={
            "description": "Télésoin : date du dernier soin en présentiel du patient par ce professionnel (ou, pour "
            "un·e IDEL, son cabinet), attestée par l'appelant et tracée, quand le hub n'en a pas ; au plus 12 mois "
            "avant la séance, jamais dans le futur."
        }
    )


class AppointmentIn(TelesoinFields, InputSchema):
    """A booking. The state, the times and the performer come from the slot and the workflow, never
    from the caller (S3)."""

    slot_id = Int(required=True)
    patient_id = Int(required=True)
    place_kind = Enum(PlaceKind, by_value=True, required=True)
    accompanying_id = Int(allow_none=True)
    sas_id = Str(
        validate=[length(64, 1), validate.Regexp(r"^[A-Za-z0-9._:-]+$", error="Identifiant SAS invalide.")],
        metadata={
            "pattern": "^[A-Za-z0-9._:-]+$",
            "description": "Rendez-vous pris par le Service d'accès aux soins : son identifiant au SAS. Le SAS est "
            "ensuite informé de chaque statut (réservé, honoré, absent, annulé).",
        },
    )
    remote_share_override_reason = Str(
        validate=length(300, 1),
        metadata={
            # What InputSchema refuses (hub.schemas.base.CONTROL_CHARACTERS), stated so the document says it too;
            # but lone surrogates, which a range in a pattern does not state to every reader (schemathesis then
            # generated control characters the pattern excludes).
            "pattern": "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f\\ufffe\\uffff]*$",
            "description": "Télésoin : motif de la coordination pour dépasser le plafond de 20 % de télésoin "
            "du professionnel (exigé seulement quand la séance le ferait dépasser). Les caractères de contrôle, "
            "U+FFFE, U+FFFF et les demi-codets isolés (surrogates) sont refusés.",
        },
    )


class AppointmentForm(TelesoinFields, FormSchema):
    patient_id = Int(required=True)
    place_kind = Enum(PlaceKind, by_value=True, required=True)
    accompanying_id = Int(allow_none=True)
    remote_share_override_reason = Str(validate=length(300, 1))


class NoBodyIn(InputSchema):
    """A verb that takes nothing: any field sent (a state, a date…) is refused."""


class NoBodyForm(FormSchema):
    """A one-button form: only its CSRF token is sent."""


class ReasonIn(InputSchema):
    reason = Str(required=True, validate=length(300, 1))


class ReasonForm(ReasonIn, FormSchema):
    pass


# At the session the IDEL hears the patient or has them sign; an electronic consent is collected elsewhere.
SESSION_CONSENT_METHODS = (ConsentMethod.ORAL, ConsentMethod.WRITTEN)


class SessionConsentForm(FormSchema):
    method = Enum(
        ConsentMethod,
        by_value=True,
        required=True,
        validate=validate.OneOf(SESSION_CONSENT_METHODS, error="Choisissez : oral ou écrit signé."),
    )


class ReassignIn(InputSchema):
    accompanying_id = Int(required=True)


class ReassignForm(ReassignIn, FormSchema):
    pass


class CheckInIn(InputSchema):
    # Missing values are left to the workflow, which says precisely what the HAS checklist needs.
    identity_method = Str(load_default="", validate=_one_of(IDENTITY_METHODS))
    patient_location = Str(load_default="", validate=length(300))
    callback_phone = Identifier(check_phone, load_default="")


class CheckInForm(CheckInIn, FormSchema):
    pass


class ChecklistIn(InputSchema):
    """The HAS pre-session checklist, saved before the session (workflows.appointments.save_checklist)."""

    camera = Bool(load_default=False)
    sound = Bool(load_default=False)
    light = Bool(load_default=False)
    privacy = Bool(load_default=False)
    adult_present = Bool(load_default=False)


class ChecklistForm(ChecklistIn, FormSchema):
    pass


class PlanningWeekArgs(FormSchema):
    week = Date(allow_none=True)


class AgendaArgs(FormSchema):
    day = Date(allow_none=True)
    view = Str(load_default="day", validate=_one_of(("day", "week")))


FHIR_STATUS = {
    AppointmentState.PROPOSED: "pending",
    AppointmentState.CONFIRMED: "booked",
    AppointmentState.CHECKED_IN: "checked-in",
    AppointmentState.DONE: "fulfilled",
    AppointmentState.DECLINED: "pending",
    AppointmentState.CANCELLED: "cancelled",
    AppointmentState.NO_SHOW: "noshow",
    AppointmentState.DEGRADED: "fulfilled",
    AppointmentState.POSTPONED: "cancelled",  # did not take place: the performer was absent
}
_AWAITING = frozenset({AppointmentState.PROPOSED, AppointmentState.DECLINED})


def participants(appointment) -> list[dict]:
    """FHIR-like participants: the professionals `needs-action` until the visit is confirmed, then `accepted`."""
    status = "needs-action" if appointment.state in _AWAITING else "accepted"
    rows = [
        {"role": "patient", "actor": {"type": "Patient", "id": appointment.patient_id}, "status": "accepted"},
        {"role": "performer", "actor": {"type": "Practitioner", "id": appointment.performer_id}, "status": status},
    ]
    if appointment.accompanying_id is not None:
        actor = {"type": "Practitioner", "id": appointment.accompanying_id}
        rows.append({"role": "accompanying", "actor": actor, "status": status})
    return rows


class AppointmentOut(Schema):
    # The documented answer; the hot routes build it with `appointment_out` below, its twin field for field (a test
    # compares them: a field added here must be added there).
    id = fields.Integer()
    kind = fields.Enum(AppointmentKind, by_value=True)
    state = fields.Enum(AppointmentState, by_value=True)
    state_label = fields.Function(appointment_state_label)  # « IDEL à trouver » rather than « Proposé »
    fhir_status = fields.Function(lambda a: FHIR_STATUS[a.state])
    participants = fields.Function(participants)
    patient_id = fields.Integer()
    slot_id = fields.Integer(allow_none=True)
    program_id = fields.Integer(allow_none=True)
    performer_id = fields.Integer()
    accompanying_id = fields.Integer(allow_none=True)
    place_kind = fields.Enum(PlaceKind, by_value=True)
    # The room or dedicated place and the kit the appointment holds, named as the coordination named them.
    room_id = fields.Integer(allow_none=True)
    room_name = fields.Function(lambda row: row.room.name if row.room else None)
    kit_id = fields.Integer(allow_none=True)
    kit_name = fields.Function(lambda row: row.kit.name if row.kit else None)
    starts_at = fields.AwareDateTime()
    ends_at = fields.AwareDateTime()
    accompaniment_starts_at = fields.AwareDateTime(allow_none=True)
    accompaniment_ends_at = fields.AwareDateTime(allow_none=True)
    confirmed_at = fields.AwareDateTime(allow_none=True)
    declined_reason = fields.String(allow_none=True)
    cancelled_at = fields.AwareDateTime(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    is_late_cancellation = fields.Boolean()
    identity_checked_at = fields.AwareDateTime(allow_none=True)
    checklist = fields.Function(lambda row: json.loads(row.checklist) if row.checklist_saved_at else None)
    checklist_saved_at = fields.AwareDateTime(allow_none=True)
    degraded_reason = fields.String(allow_none=True)
    telesoin_act = fields.String(allow_none=True)
    telesoin_act_label = fields.String(allow_none=True)
    act_coefficient = fields.Decimal(places=2, as_string=True, allow_none=True)
    last_in_person_dressing_on = fields.Date(allow_none=True)
    last_in_person_contact_on = fields.Date(allow_none=True)
    remote_share_override_reason = fields.String(allow_none=True)
    sequence = fields.Integer()

    # The appointment's columns the fields above read, those of the functions included (the API's read loads only
    # them).
    COLUMNS = (
        "id",
        "kind",
        "state",
        "patient_id",
        "slot_id",
        "program_id",
        "performer_id",
        "accompanying_id",
        "place_kind",
        "room_id",
        "kit_id",
        "starts_at",
        "ends_at",
        "accompaniment_starts_at",
        "accompaniment_ends_at",
        "confirmed_at",
        "declined_reason",
        "cancelled_at",
        "cancel_reason",
        "is_late_cancellation",
        "identity_checked_at",
        "checklist",
        "checklist_saved_at",
        "degraded_reason",
        "telesoin_act",
        "act_coefficient",
        "last_in_person_dressing_on",
        "last_in_person_contact_on",
        "remote_share_override_reason",
        "sequence",
    )


_HUNDREDTHS = Decimal("0.01")


def appointment_out(appointment, *, room_name: str | None, kit_name: str | None) -> dict:
    """`AppointmentOut().dump(appointment)`, field for field and in its order (a test compares the two), of an
    Appointment or a row of its `COLUMNS`, the room's and the kit's names given: marshmallow's dump cost about a
    tenth of the appointment's read and of each state change's CPU (issue 17, P7)."""
    a = appointment
    return {
        "id": a.id,
        "kind": a.kind.value,
        "state": a.state.value,
        "state_label": state_label(a.state, a.kind, a.accompanying_id),
        "fhir_status": FHIR_STATUS[a.state],
        "participants": participants(a),
        "patient_id": a.patient_id,
        "slot_id": a.slot_id,
        "program_id": a.program_id,
        "performer_id": a.performer_id,
        "accompanying_id": a.accompanying_id,
        "place_kind": a.place_kind.value,
        "room_id": a.room_id,
        "room_name": room_name,
        "kit_id": a.kit_id,
        "kit_name": kit_name,
        "starts_at": _iso(a.starts_at),
        "ends_at": _iso(a.ends_at),
        "accompaniment_starts_at": _iso(a.accompaniment_starts_at),
        "accompaniment_ends_at": _iso(a.accompaniment_ends_at),
        "confirmed_at": _iso(a.confirmed_at),
        "declined_reason": a.declined_reason,
        "cancelled_at": _iso(a.cancelled_at),
        "cancel_reason": a.cancel_reason,
        "is_late_cancellation": None if a.is_late_cancellation is None else bool(a.is_late_cancellation),
        "identity_checked_at": _iso(a.identity_checked_at),
        "checklist": json.loads(a.checklist) if a.checklist_saved_at else None,
        "checklist_saved_at": _iso(a.checklist_saved_at),
        "degraded_reason": a.degraded_reason,
        "telesoin_act": a.telesoin_act,
        "telesoin_act_label": telesoin_act_label(a.telesoin_act),
        "act_coefficient": None if a.act_coefficient is None else format(a.act_coefficient.quantize(_HUNDREDTHS), "f"),
        "last_in_person_dressing_on": _iso(a.last_in_person_dressing_on),
        "last_in_person_contact_on": _iso(a.last_in_person_contact_on),
        "remote_share_override_reason": a.remote_share_override_reason,
        "sequence": a.sequence,
    }


def appointment_entity_out(appointment) -> dict:
    """`appointment_out` of an Appointment entity, its room's and kit's names read through its relationships."""
    room, kit = appointment.room, appointment.kit
    return appointment_out(appointment, room_name=room.name if room else None, kit_name=kit.name if kit else None)


def _iso(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


class BookingOut(AppointmentOut):
    """The appointment just booked, with what the booker should know (a télésoin share past the 15 % warning)."""

    warnings = fields.List(fields.String())


# --- series bookings --------------------------------------------------------------------------------------


class SeriesIn(TelesoinFields, InputSchema):
    """A series from a first slot: its place in every `every`-th occurrence of the program, `count` sessions or
    until a local day (one of them)."""

    slot_id = Int(required=True)
    patient_id = Int(required=True)
    every = Int(load_default=1, validate=_range(1, 12))
    count = Int(validate=_range(1, 52))
    until = Date()
    place_kind = Enum(PlaceKind, by_value=True)
    accompanying_id = Int(allow_none=True)

    @validates_schema
    def _count_or_until(self, data, **_kwargs):
        if (data.get("count") is None) == (data.get("until") is None):
            raise ValidationError("Indiquez soit un nombre de séances, soit une date de fin.", "count")


class SeriesBookIn(SeriesIn):
    # True: every occurrence or nothing (409 naming the conflicts); false: the free ones only.
    all_or_nothing = Bool(load_default=True)


class SeriesBookingForm(SeriesIn, FormSchema):
    """The page's form: the first slot is the page's own."""

    class Meta(FormSchema.Meta):
        exclude = ("slot_id",)

    count = Int(allow_none=True, validate=_range(1, 52))
    until = Date(allow_none=True)
    patient_id = Int(required=True)
    all_or_nothing = Bool(load_default=False)  # an unticked box is not sent
    action = Str(load_default="check", validate=_one_of(("check", "book")))


class SeriesOccurrenceOut(Schema):
    starts_at = fields.String()
    label = fields.String()
    slot_id = fields.Integer(allow_none=True)
    ok = fields.Boolean()
    problems = fields.List(fields.String())


class SeriesCheckOut(Schema):
    occurrences = fields.List(fields.Nested(SeriesOccurrenceOut))
    free = fields.Integer()
    conflicting = fields.Integer()


class SeriesBookedOut(Schema):
    booked = fields.List(fields.Nested(AppointmentOut))
    left_out = fields.List(fields.Nested(SeriesOccurrenceOut))


class PathwayScheduleIn(InputSchema):
    # True: every step or nothing (409 naming the conflicts); false: the free ones only.
    all_or_nothing = Bool(load_default=True)


class PathwayScheduleForm(PathwayScheduleIn, FormSchema):
    all_or_nothing = Bool(load_default=False)  # an unticked box is not sent


class StepPlanOut(Schema):
    step_id = fields.Integer()
    name = fields.String()
    due_on = fields.String()
    slot_id = fields.Integer(allow_none=True)
    starts_at = fields.String(allow_none=True)
    label = fields.String(allow_none=True)
    ok = fields.Boolean()
    problems = fields.List(fields.String())


class PathwayPlanOut(Schema):
    steps = fields.List(fields.Nested(StepPlanOut))
    free = fields.Integer()
    conflicting = fields.Integer()


class PathwayBookedOut(Schema):
    booked = fields.List(fields.Nested(AppointmentOut))
    left_out = fields.List(fields.Nested(StepPlanOut))
