"""Schema plumbing: French error messages, strict input (unknown fields refused), one load helper.

Input schemas check shape only and load to dicts; policy and database checks belong to services.

The input policy (I2), the same for the API and the forms, so that no value reaches the database only to fail
there (a 500, and the statement's parameters in the server's log):
- integers within PostgreSQL's `integer` (every id and count column is one), pages within `MAX_PAGE`;
- no control character in any text but tab and line breaks (a NUL byte is refused by PostgreSQL), nor the
  rest of what XML 1.0 forbids (U+FFFE, U+FFFF, lone surrogates);
- dates and instants between 1900-01-01 and 2100-12-31: the oldest living patients were born after 1900, the
  planning, tariffs and statements stop well before 2100, and within that window the zone conversions and
  date arithmetic (a horizon of weeks, a year's end) never leave Python's date range.
"""

import datetime as dt
import re

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, pre_load, validate

from hub.errors import ValidationFailed

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
OUT_OF_RANGE = f"Nombre hors des limites acceptées (de {INT_MIN} à {INT_MAX})."
# A page beyond the last is merely empty; the bound keeps OFFSET (page × at most 200) far from any overflow.
MAX_PAGE = 1_000_000
EARLIEST_DAY, LATEST_DAY = dt.date(1900, 1, 1), dt.date(2100, 12, 31)
# The same window as the OpenAPI document can say it (a pattern on the ISO text), so that what the document allows
# the server accepts.
DAY_IN_WINDOW = "^(19[0-9]{2}|20[0-9]{2}|2100)-"
OUT_OF_WINDOW = "La date doit être comprise entre le 01/01/1900 et le 31/12/2100."
# C0 control characters but tab, line feed and carriage return (a textarea's line breaks), and DEL; and the rest of
# what XML 1.0 forbids, which no one types either: U+FFFE, U+FFFF, and lone surrogates (a JSON body's "\ud800",
# which no database stores: a 500). A name or a text then always fits the CDA and the XDM metadata it goes to.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
CONTROL_CHARACTER = "Caractère de contrôle non autorisé (retirez-le et réessayez)."

_COMMON = {
    "required": "Ce champ est obligatoire.",
    "null": "Ce champ ne peut pas être vide.",
    "validator_failed": "Valeur invalide.",
}


class Str(fields.String):
    default_error_messages = {**_COMMON, "invalid": "Texte attendu.", "invalid_utf8": "Texte UTF-8 attendu."}


class Int(fields.Integer):
    """An integer that fits the database's `integer` column. The bound is a Range validator, so that the OpenAPI
    document (apispec reads validators) states it too."""

    default_error_messages = {**_COMMON, "invalid": "Nombre entier attendu.", "too_large": OUT_OF_RANGE}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(validate.Range(INT_MIN, INT_MAX, error=OUT_OF_RANGE))


class Page(Int):
    """A page number of a list (1 by default)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("load_default", 1)
        kwargs.setdefault("validate", validate.Range(1, MAX_PAGE, error=f"Numéro de page invalide (1 à {MAX_PAGE})."))
        super().__init__(**kwargs)


class Bool(fields.Boolean):
    default_error_messages = {**_COMMON, "invalid": "Valeur oui/non attendue."}


def check_day(day: dt.date) -> None:
    """A day (or an instant's own calendar day) within the window every date input keeps to."""
    if not EARLIEST_DAY <= (day.date() if isinstance(day, dt.datetime) else day) <= LATEST_DAY:
        raise ValidationError(OUT_OF_WINDOW)


class Date(fields.Date):
    default_error_messages = {
        **_COMMON,
        "invalid": "Date invalide (format attendu : AAAA-MM-JJ).",
        "format": "Date invalide.",
    }

    def __init__(self, *args, **kwargs):
        kwargs["metadata"] = {"pattern": DAY_IN_WINDOW, **kwargs.get("metadata", {})}
        super().__init__(*args, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        day = super()._deserialize(value, attr, data, **kwargs)
        check_day(day)
        return day


class AwareDateTime(fields.AwareDateTime):
    default_error_messages = {
        **_COMMON,
        "invalid": "Date et heure invalides (format ISO 8601 attendu).",
        "invalid_awareness": "Indiquez le fuseau horaire (par exemple +01:00 ou Z).",
        "format": "Date et heure invalides.",
    }

    def __init__(self, *args, **kwargs):
        kwargs["metadata"] = {"pattern": DAY_IN_WINDOW, **kwargs.get("metadata", {})}
        super().__init__(*args, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        instant = super()._deserialize(value, attr, data, **kwargs)
        check_day(instant)
        return instant


class Enum(fields.Enum):
    default_error_messages = {**_COMMON, "unknown": "Valeur inconnue ; valeurs possibles : {choices}."}


class List(fields.List):
    default_error_messages = {**_COMMON, "invalid": "Liste attendue."}


def length(maximum: int, minimum: int = 0) -> validate.Length:
    return validate.Length(
        min=minimum,
        max=maximum,
        error=f"Entre {minimum} et {maximum} caractères." if minimum else f"Au plus {maximum} caractères.",
    )


class Identifier(Str):
    """A national identifier, checked and loaded in its canonical form by one of hub.identifiers' checks
    (which raise ValueError with a French message)."""

    def __init__(self, check, **kwargs):
        super().__init__(**kwargs)
        self.check = check

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        try:
            return self.check(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class InputSchema(Schema):
    """Unknown fields are refused (S3); no text anywhere holds a control character (I2); blank strings count as
    absent; strings are trimmed."""

    error_messages = {"unknown": "Champ inconnu ou non modifiable.", "type": "Objet JSON attendu."}

    class Meta:
        unknown = RAISE

    @pre_load
    def _clean(self, data, **_kwargs):
        if not isinstance(data, dict):
            return data
        _refuse_control_characters(data)
        cleaned = {}
        for key, value in data.items():
            if isinstance(value, str):
                value = value.strip()
                if value == "" and not self.fields.get(key, fields.Field()).allow_none:
                    continue
                if value == "":
                    value = None
            cleaned[key] = value
        return cleaned


def _refuse_control_characters(data: dict) -> None:
    """Checked on the raw values, whatever the field's type (an enum, a time, a list of texts), so that no field
    class can forget it; before trimming, which would silently drop some of them; the message goes next to the
    field holding the character."""
    refused = {str(key): [CONTROL_CHARACTER] for key, value in data.items() if _has_control(key, value)}
    if refused:
        raise ValidationError(refused)


def _has_control(*values) -> bool:
    """Whether any text in these values (nested lists and objects included) holds a control character. The
    JSON body's depth is bounded before it reaches a schema (hub.http.inputs), so the recursion is too."""
    for value in values:
        if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
            return True
        if isinstance(value, dict) and _has_control(*value.keys(), *value.values()):
            return True
        if isinstance(value, list | tuple) and _has_control(*value):
            return True
    return False


class FormSchema(InputSchema):
    """An HTML form also carries its CSRF token and submit buttons, which are not data."""

    class Meta:
        unknown = EXCLUDE


def load(schema: Schema, data, *, partial: bool = False) -> dict:
    try:
        return schema.load(data, partial=partial)
    except ValidationError as exc:
        raise ValidationFailed(_flatten(exc.messages)) from exc


def _flatten(messages, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    if isinstance(messages, list):
        return {prefix or "_schema": str(messages[0])} if messages else {}
    for key, value in messages.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = str(value[0]) if isinstance(value, list) and value else str(value)
    return flat
