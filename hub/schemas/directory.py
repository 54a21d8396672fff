from marshmallow import Schema, fields

from hub.identifiers import check_finess, check_insee_commune, check_mssante_address, check_phone, check_rpps
from hub.models import OrganisationKind, Profession
from hub.schemas.base import Bool, Enum, FormSchema, Identifier, InputSchema, Int, List, Page, Str, length


class OrganisationIn(InputSchema):
    name = Str(required=True, validate=length(200, 2))
    kind = Enum(OrganisationKind, by_value=True, required=True)
    finess = Identifier(check_finess, allow_none=True)
    commune_insee = Identifier(check_insee_commune, allow_none=True)


class OrganisationForm(OrganisationIn, FormSchema):
    pass


class OrganisationOut(Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.Enum(OrganisationKind, by_value=True)
    finess = fields.String(allow_none=True)
    commune_insee = fields.String(allow_none=True)
    cpts_id = fields.Integer(allow_none=True)


class ProfessionalIn(InputSchema):
    rpps = Identifier(check_rpps, allow_none=True)
    last_name = Str(required=True, validate=length(100, 1))
    first_name = Str(required=True, validate=length(100, 1))
    profession = Enum(Profession, by_value=True, required=True)
    specialty = Str(validate=length(100), allow_none=True)
    mssante_address = Identifier(check_mssante_address, allow_none=True)
    phone = Identifier(check_phone, allow_none=True)
    commune_insee = Identifier(check_insee_commune, allow_none=True)
    does_telesoin = Bool(load_default=False)
    accompanies_teleconsultation = Bool(load_default=False)
    is_active = Bool(load_default=True)
    organisation_ids = List(Int(), load_default=list)


class ProfessionalForm(ProfessionalIn, FormSchema):
    pass


class ProfessionalOut(Schema):
    id = fields.Integer()
    rpps = fields.String(allow_none=True)
    last_name = fields.String()
    first_name = fields.String()
    profession = fields.Enum(Profession, by_value=True)
    specialty = fields.String(allow_none=True)
    mssante_address = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    commune_insee = fields.String(allow_none=True)
    does_telesoin = fields.Boolean()
    accompanies_teleconsultation = fields.Boolean()
    is_active = fields.Boolean()
    organisation_ids = fields.Function(lambda p: [o.id for o in p.organisations])


class ProfessionalSearchForm(FormSchema):
    q = Str(validate=length(100), allow_none=True)
    profession = Enum(Profession, by_value=True, allow_none=True)
    page = Page()
