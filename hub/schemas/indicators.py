"""The indicators' filters (a Paris year, a month or the whole year, a program) and their JSON shape."""

from decimal import Decimal

from marshmallow import Schema, fields, validate

from hub.schemas.base import FormSchema, Int


class IndicatorArgs(FormSchema):
    year = Int(validate=validate.Range(2000, 2100, error="Année entre 2000 et 2100."))
    month = Int(validate=validate.Range(1, 12, error="Mois entre 1 et 12."))
    program_id = Int(validate=validate.Range(1, error="Programme inconnu."))


def _json(value):
    """Amounts as decimal strings, as everywhere in the API; counts and rates as numbers."""
    return str(value) if isinstance(value, Decimal) else value


class IndicatorOut(Schema):
    key = fields.String()
    title = fields.String()
    how = fields.String(metadata={"description": "Comment l'indicateur est calculé."})
    columns = fields.List(fields.String())
    rows = fields.Function(
        lambda i: [[_json(value) for value in row] for row in i.rows],
        metadata={"description": "Une ligne par libellé (première colonne), puis les valeurs des colonnes."},
    )


class IndicatorsOut(Schema):
    title = fields.String()
    year = fields.Function(lambda r: r.scope.period.year)
    month = fields.Function(lambda r: r.scope.period.month)
    program_id = fields.Function(lambda r: r.scope.program_id)
    program_name = fields.String(allow_none=True)
    indicators = fields.List(fields.Nested(IndicatorOut))
