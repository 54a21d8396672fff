"""Fees, tariffs and declared activity: input schemas (shape only), page forms, and what the API shows.

No input lets anyone set a fee's amount or status: fees are accrued by the workflows. The activity form
refuses unknown fields (S3), so that a professional cannot slip another professional's id into it.
"""

import re
from decimal import Decimal, InvalidOperation

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from hub.models import AppointmentState, FeeStatus, TariffUnit
from hub.schemas.base import Date, FormSchema, InputSchema, Int, Str, length

MAX_AMOUNT = Decimal("10000000")
CODE = validate.Regexp(r"^[A-Z][A-Z0-9]{1,9}$", error="Code invalide : 2 à 10 lettres majuscules ou chiffres.")


class Euros(fields.Decimal):
    """An amount in euros, to the cent: `12.5`, `"12,50"` or `"1 234,50 €"` (a string in the answers)."""

    default_error_messages = {
        "required": "Ce champ est obligatoire.",
        "null": "Ce champ ne peut pas être vide.",
        "invalid": "Montant invalide (en euros, par exemple 12,50).",
        "range": "Le montant doit être positif et inférieur à 10 000 000 €.",
        "cents": "Montant au centime près attendu.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.make_error("invalid")
        text = str(value).replace("€", "").replace(",", ".")
        text = "".join(text.split()).replace("\u202f", "")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise self.make_error("invalid") from None
        if not amount.is_finite():
            raise self.make_error("invalid")
        if amount < 0 or amount >= MAX_AMOUNT:
            raise self.make_error("range")
        if amount != amount.quantize(Decimal("0.01")):
            raise self.make_error("cents")
        return amount.quantize(Decimal("0.01"))

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value)


def _range(low: int, high: int) -> validate.Range:
    return validate.Range(min=low, max=high, error=f"Entre {low} et {high}.")


# --- queries ---------------------------------------------------------------------------------------------


class FeeQueryArgs(InputSchema):
    """`GET /api/v1/fees`: by professional, period (`from`, `to`, inclusive) and code."""

    professional_id = Int(validate=_range(1, 2**31 - 1))
    from_ = Date(data_key="from")
    to = Date()
    code = Str(validate=CODE)
    page = Int()
    per_page = Int()

    @validates_schema
    def _in_order(self, data, **_kwargs):
        if data.get("from_") and data.get("to") and data["to"] < data["from_"]:
            raise ValidationError("La fin de la période précède son début.", "to")


class RemoteShareArgs(InputSchema):
    year = Int(validate=_range(2000, 2100))


class StatementArgs(FormSchema):
    """The month selector of the statement pages: a year, and a month or the whole year."""

    year = Int(validate=_range(2000, 2100))
    month = Int(validate=_range(1, 12))


# --- forms and inputs ------------------------------------------------------------------------------------


class _StrictForm(InputSchema):
    """A page form that refuses unknown fields (S3), its CSRF token apart."""

    csrf_token = Str(load_only=True)

    @post_load
    def _drop_token(self, data, **_kwargs):
        data.pop("csrf_token", None)
        return data


class ActivityIn(InputSchema):
    """One month's total conventioned activity (in euros), declared by the professional for themselves."""

    year = Int(required=True, validate=_range(2000, 2100))
    month = Int(required=True, validate=_range(1, 12))
    amount = Euros(required=True)


PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


class ActivityForm(_StrictForm):
    """The page's short form: the month, chosen among those of the rolling year (`2026-11`), and its amount."""

    period = Str(required=True, validate=validate.Regexp(PERIOD, error="Choisissez un mois de la liste."))
    amount = Euros(required=True)

    @post_load
    def _year_and_month(self, data, **_kwargs):
        match = PERIOD.match(data.pop("period"))
        assert match is not None  # the field's validator
        year, month = int(match[1]), int(match[2])
        if not (2000 <= year <= 2100 and 1 <= month <= 12):
            raise ValidationError("Choisissez un mois de la liste.", "period")
        return data | {"year": year, "month": month}


class TariffIn(InputSchema):
    """A new version of a tariff: the rule parameters carry over from the code's latest version."""

    code = Str(required=True, validate=CODE)
    label = Str(required=True, validate=length(200, 1))
    amount = Euros(required=True)
    effective_from = Date(required=True)


class TariffForm(TariffIn, FormSchema):
    pass


# --- what the API shows ----------------------------------------------------------------------------------


class FeeOut(Schema):
    id = fields.Integer()
    professional_id = fields.Integer()
    act_on = fields.Date()
    code = fields.String()
    label = fields.String()
    coefficient = fields.Decimal(as_string=True)
    amount = fields.Decimal(as_string=True)
    status = fields.Enum(FeeStatus, by_value=True)
    status_label = fields.String()
    patient_initials = fields.String(allow_none=True)
    prescriber_rpps = fields.String(allow_none=True)
    prescriber_name = fields.String(allow_none=True)
    note = fields.String(allow_none=True)


class RemoteShareOut(Schema):
    professional_id = fields.Integer()
    period_start = fields.Date()
    period_end = fields.Date()
    share = fields.Decimal(as_string=True, allow_none=True)
    remote_amount = fields.Decimal(as_string=True)
    total_amount = fields.Decimal(as_string=True, allow_none=True)
    estimated = fields.Boolean()
    level = fields.String(metadata={"enum": ["ok", "alerte", "depasse", "inconnu"]})
    warning_at = fields.Decimal(as_string=True)
    limit = fields.Decimal(as_string=True)


class ShareOverrideOut(Schema):
    """A coordinator's override of the 20 % télésoin share, with its reason."""

    appointment_id = fields.Integer()
    professional_id = fields.Integer()
    professional_name = fields.String()
    starts_at = fields.AwareDateTime()
    share = fields.Decimal(as_string=True, allow_none=True)
    reason = fields.String(allow_none=True)
    overridden_at = fields.AwareDateTime()
    overridden_by = fields.String()


class ActivityMonthOut(Schema):
    year = fields.Integer()
    month = fields.Integer()
    amount = fields.Function(lambda m: str(m.declared.amount) if m.declared else None, allow_none=True)
    source = fields.Function(lambda m: m.declared.source if m.declared else None, allow_none=True)
    amount_a_year_before = fields.Function(
        lambda m: str(m.a_year_before.amount) if m.a_year_before else None, allow_none=True
    )


class ActivityOut(Schema):
    """The months of the rolling year, the most recent first (an undeclared month has no amount), each with the
    same month a year before; last calendar year's declared total."""

    professional_id = fields.Integer()
    period_start = fields.Date(attribute="window.first")
    period_end = fields.Date(attribute="window.last")
    months = fields.List(fields.Nested(ActivityMonthOut))
    last_year = fields.Integer()
    last_year_total = fields.Decimal(as_string=True)
    last_year_months_declared = fields.Integer(attribute="last_year_months")


class DeclaredMonthOut(Schema):
    professional_id = fields.Integer()
    year = fields.Integer()
    month = fields.Integer()
    amount = fields.Decimal(as_string=True)
    source = fields.String()


class AssistanceArgs(InputSchema):
    year = Int(validate=_range(2000, 2100))


class AssistedSessionOut(Schema):
    """A teleconsultation the pharmacist accompanies in the officine, with the remote doctor (the prescriber)."""

    appointment_id = fields.Integer(attribute="id")
    state = fields.Enum(AppointmentState, by_value=True)
    starts_at = fields.AwareDateTime()
    patient_id = fields.Integer()
    prescriber_id = fields.Integer(attribute="performer_id")
    prescriber_name = fields.Function(lambda a: a.performer.full_name)
    prescriber_rpps = fields.Function(lambda a: a.performer.rpps)


class PharmacyAssistanceOut(Schema):
    """A pharmacist's assistance of teleconsultations in the officine over a calendar year: the TLM paid so far
    (nothing before the 5th assistance, a block of 5 at a time, up to the yearly cap), how many more until the
    next paid block (null once the cap is reached), and the sessions: the next ones and the last done."""

    professional_id = fields.Integer(attribute="professional.id")
    year = fields.Integer(attribute="fees.year")
    code = fields.Function(lambda a: a.fees.tariff.code if a.fees.tariff else None, allow_none=True)
    assistances = fields.Integer(attribute="fees.acts")
    paid_amount = fields.Decimal(as_string=True, attribute="fees.paid")
    block_size = fields.Function(lambda a: a.fees.tariff.block_size if a.fees.tariff else None, allow_none=True)
    block_amount = fields.Function(lambda a: str(a.fees.tariff.amount) if a.fees.tariff else None, allow_none=True)
    yearly_cap = fields.Function(lambda a: str(a.fees.yearly_cap) if a.fees.yearly_cap else None, allow_none=True)
    cap_reached = fields.Boolean(attribute="fees.cap_reached")
    until_next_block = fields.Integer(attribute="fees.until_next_block", allow_none=True)
    sessions_done = fields.Integer(attribute="sessions.done_count")
    sessions_upcoming = fields.Integer(attribute="sessions.upcoming_count")
    upcoming = fields.List(fields.Nested(AssistedSessionOut), attribute="sessions.upcoming")
    recently_done = fields.List(fields.Nested(AssistedSessionOut), attribute="sessions.done")


class TariffOut(Schema):
    id = fields.Integer()
    code = fields.String()
    label = fields.String()
    profession = fields.String(allow_none=True)
    unit = fields.Enum(TariffUnit, by_value=True)
    amount = fields.Decimal(as_string=True)
    effective_from = fields.Date()
    effective_until = fields.Date(allow_none=True)
    block_size = fields.Integer(allow_none=True)
    yearly_cap_amount = fields.Decimal(as_string=True, allow_none=True)
    yearly_cap_per_patient = fields.Integer(allow_none=True)
