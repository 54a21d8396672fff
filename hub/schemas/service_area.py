"""A professional's service area: the communes served at home (INSEE codes) and the weekdays worked (1 Monday …
7 Sunday), both ways; the page's form sends the same fields as checkboxes."""

from marshmallow import Schema, fields, pre_load, validate

from hub.schemas.base import FormSchema, InputSchema, Int, List, Str
from hub.services.communes import BY_INSEE, commune_name

# The territory's communes (hub.services.communes) and the ISO weekdays: what the document allows is accepted.
COMMUNE = validate.OneOf(sorted(BY_INSEE), error="Commune inconnue du territoire.")
WEEKDAY = validate.Range(1, 7, error="Jour inconnu : de 1 (lundi) à 7 (dimanche).")
SOME_DAYS = validate.Length(min=1, error="Cochez au moins un jour travaillé.")


class ServiceAreaIn(InputSchema):
    communes = List(Str(validate=COMMUNE), load_default=list)
    days = List(Int(validate=WEEKDAY), required=True, validate=SOME_DAYS)


class ServiceAreaForm(FormSchema):
    communes = List(Str(validate=COMMUNE), load_default=list)
    days = List(Int(validate=WEEKDAY), load_default=list)

    @pre_load
    def _one_checkbox_is_a_list(self, data, **_kwargs):
        # A form sends a single ticked checkbox as a plain value.
        if isinstance(data, dict):
            data = {
                key: [value] if key in ("communes", "days") and isinstance(value, str) else value
                for key, value in data.items()
            }
        return data


class ServedCommuneOut(Schema):
    insee = fields.Function(lambda code: code)
    name = fields.Function(commune_name)


class ServiceAreaOut(Schema):
    practice_commune = fields.String(allow_none=True)
    practice_commune_name = fields.Function(lambda area: commune_name(area.practice_commune))
    communes = fields.List(fields.Nested(ServedCommuneOut))
    days = fields.List(fields.Integer())
