"""Schema plumbing: French error messages, strict input (unknown fields refused), one load helper.

Input schemas check shape only and load to dicts; policy and database checks belong to services.
"""

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, pre_load, validate

from hub.errors import ValidationFailed

_COMMON = {
    "required": "Ce champ est obligatoire.",
    "null": "Ce champ ne peut pas être vide.",
    "validator_failed": "Valeur invalide.",
}


class Str(fields.String):
    default_error_messages = {**_COMMON, "invalid": "Texte attendu.", "invalid_utf8": "Texte UTF-8 attendu."}


INTEGER_COLUMN = validate.Range(-(2**31), 2**31 - 1, error="Nombre trop grand.")


class Int(fields.Integer):
    """A whole number that fits the database's INTEGER columns: a larger one (an id typed or forged) is refused
    with the form, instead of overflowing the query that looks it up."""

    default_error_messages = {
        **_COMMON,
        "invalid": "Nombre entier attendu.",
        "too_large": "Nombre trop grand.",
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.validators = [INTEGER_COLUMN, *self.validators]


class Bool(fields.Boolean):
    default_error_messages = {**_COMMON, "invalid": "Valeur oui/non attendue."}


class Date(fields.Date):
    default_error_messages = {
        **_COMMON,
        "invalid": "Date invalide (format attendu : AAAA-MM-JJ).",
        "format": "Date invalide.",
    }


class AwareDateTime(fields.AwareDateTime):
    default_error_messages = {
        **_COMMON,
        "invalid": "Date et heure invalides (format ISO 8601 attendu).",
        "invalid_awareness": "Indiquez le fuseau horaire (par exemple +01:00 ou Z).",
        "format": "Date et heure invalides.",
    }


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
    """Unknown fields are refused (S3); blank strings count as absent; strings are trimmed."""

    error_messages = {"unknown": "Champ inconnu ou non modifiable.", "type": "Objet JSON attendu."}

    class Meta:
        unknown = RAISE

    @pre_load
    def _blank_is_absent(self, data, **_kwargs):
        if not isinstance(data, dict):
            return data
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
