"""Fees, tariffs and declared activity: input schemas (shape only), page forms, and what the API shows.

No input lets anyone set a fee's amount or status: fees are accrued by the workflows. The activity form
refuses unknown fields (S3), so that a professional cannot slip another professional's id into it.
"""

from decimal import Decimal, InvalidOperation

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from hub.models import FeeStatus, TariffUnit
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


class ActivityForm(_StrictForm):
    """One month's total conventioned activity, declared by the professional for themselves."""

    year = Int(required=True, validate=_range(2000, 2100))
    month = Int(required=True, validate=_range(1, 12))
    amount = Euros(required=True)


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
