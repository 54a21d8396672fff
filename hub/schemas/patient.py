import datetime as dt

from marshmallow import Schema, fields

from hub.documents.identity import ins_for_sending
from hub.identifiers import NAME_TRAIT_LABELS, check_ins_matricule, check_insee_commune, check_name_trait, check_phone
from hub.models import ConsentKind, ConsentMethod, IdentityCheckKind, IdentityDocumentType, IdentityStatus, Sex
from hub.schemas.base import (
    AwareDateTime,
    Bool,
    Date,
    Enum,
    FormSchema,
    Identifier,
    InputSchema,
    Int,
    Page,
    Str,
    length,
)


def _trait(name: str):
    return check_name_trait(NAME_TRAIT_LABELS[name])


class PatientIn(InputSchema):
    birth_name = Identifier(_trait("birth_name"), required=True, validate=length(100, 1))
    first_birth_given_name = Identifier(_trait("first_birth_given_name"), required=True, validate=length(100, 1))
    birth_given_names = Identifier(_trait("birth_given_names"), validate=length(200), allow_none=True)
    birth_date = Date(required=True)
    sex = Enum(Sex, by_value=True, required=True)
    birth_place_insee = Identifier(check_insee_commune, required=True)
    used_last_name = Identifier(_trait("used_last_name"), validate=length(100), allow_none=True)
    used_first_name = Identifier(_trait("used_first_name"), validate=length(100), allow_none=True)
    ins_matricule = Identifier(check_ins_matricule, allow_none=True)
    phone = Identifier(check_phone, allow_none=True)
    address = Str(validate=length(500), allow_none=True)
    commune_insee = Identifier(check_insee_commune, allow_none=True)
    attending_gp_id = Int(allow_none=True)
    legal_representative_name = Str(validate=length(200), allow_none=True)
    legal_representative_phone = Identifier(check_phone, allow_none=True)
    legal_representative_relationship = Str(validate=length(60), allow_none=True)


class PatientForm(PatientIn, FormSchema):
    duplicates_checked = Bool(load_default=False)


class IdentityCheckIn(InputSchema):
    kind = Enum(IdentityCheckKind, by_value=True, required=True)
    document_type = Enum(IdentityDocumentType, by_value=True, allow_none=True)
    note = Str(validate=length(300), allow_none=True)


class ConsentIn(InputSchema):
    """The day the consent was collected (`collected_on`), or the instant when it is known (`collected_at`)."""

    kind = Enum(ConsentKind, by_value=True, required=True)
    method = Enum(ConsentMethod, by_value=True, required=True)
    collected_on = Date()
    collected_at = AwareDateTime()
    collected_by_professional_id = Int(allow_none=True)


class ConsentForm(FormSchema):
    kind = Enum(ConsentKind, by_value=True, required=True)
    method = Enum(ConsentMethod, by_value=True, required=True)
    collected_on = Date(required=True)


class IdentityCheckPageForm(FormSchema):
    """The identity check form of the patient's page, whose `kind` field would clash with the consent form's."""

    kind = Enum(IdentityCheckKind, by_value=True, required=True, data_key="check_kind")
    document_type = Enum(IdentityDocumentType, by_value=True, allow_none=True)
    note = Str(validate=length(300), allow_none=True)


class CareTeamMemberForm(FormSchema):
    professional_id = Int(required=True)


class PatientSearchForm(FormSchema):
    q = Str(validate=length(100), allow_none=True)
    birth_date = Date(allow_none=True)
    page = Page()


class ConsentWithdrawalIn(InputSchema):
    reason = Str(required=True, validate=length(300, 1))


class ConsentWithdrawalForm(ConsentWithdrawalIn, FormSchema):
    pass


class ConsentOut(Schema):
    id = fields.Integer()
    kind = fields.Enum(ConsentKind, by_value=True)
    method = fields.Enum(ConsentMethod, by_value=True)
    collected_on = fields.Date()
    collected_at = fields.AwareDateTime(allow_none=True)
    collected_by_professional_id = fields.Integer(allow_none=True)
    withdrawn_at = fields.AwareDateTime(allow_none=True)
    is_valid = fields.Boolean()


class ConsentWithdrawalOut(ConsentOut):
    """The withdrawn consent, with the patient's future remote sessions still planned that the coordinator
    must now cancel or turn into an in-person alternative."""

    remote_appointments_to_review = fields.List(fields.Integer())


def _ins_out(patient) -> dict | None:
    """Shown only with a qualified identity: the rule of hub.documents.identity."""
    ins = ins_for_sending(patient)
    return {"matricule": ins[0], "oid": ins[1]} if ins else None


class PatientOut(Schema):
    """What the API shows of a patient. The INS leaves the hub only with a qualified identity."""

    id = fields.Integer()
    birth_name = fields.String()
    first_birth_given_name = fields.String()
    birth_given_names = fields.String(allow_none=True)
    birth_date = fields.Date()
    sex = fields.Enum(Sex, by_value=True)
    birth_place_insee = fields.String()
    used_last_name = fields.String(allow_none=True)
    used_first_name = fields.String(allow_none=True)
    identity_status = fields.Function(lambda p: p.identity_status.value)
    ins = fields.Function(_ins_out)
    phone = fields.String(allow_none=True)
    commune_insee = fields.String(allow_none=True)
    attending_gp_id = fields.Integer(allow_none=True)
    consents = fields.List(fields.Nested(ConsentOut))


def patient_record_out(rows) -> dict:
    """`PatientOut().dump(patient)` from the rows of `hub.auth.policies.visible_patient_record`, field for field
    (a test compares the two): marshmallow's dump cost about 5 % of the whole read (P1)."""
    first = rows[0]
    # The rule of hub.documents.identity.ins_for_sending, which PatientOut applies: the INS only when qualified.
    qualified = first.identity_status is IdentityStatus.QUALIFIED
    return {
        "id": first.id,
        "birth_name": first.birth_name,
        "first_birth_given_name": first.first_birth_given_name,
        "birth_given_names": first.birth_given_names,
        "birth_date": first.birth_date.isoformat(),
        "sex": first.sex.value,
        "birth_place_insee": first.birth_place_insee,
        "used_last_name": first.used_last_name,
        "used_first_name": first.used_first_name,
        "identity_status": first.identity_status.value,
        "ins": {"matricule": first.ins_matricule, "oid": first.ins_oid} if qualified and first.ins_matricule else None,
        "phone": first.phone,
        "commune_insee": first.commune_insee,
        "attending_gp_id": first.attending_gp_id,
        "consents": [_consent_out(row) for row in rows if row.consent_id is not None],
    }


def _consent_out(row) -> dict:
    return {
        "id": row.consent_id,
        "kind": row.consent_kind.value,
        "method": row.consent_method.value,
        "collected_on": row.consent_collected_on.isoformat(),
        "collected_at": _iso(row.consent_collected_at),
        "collected_by_professional_id": row.consent_collected_by_professional_id,
        "withdrawn_at": _iso(row.consent_withdrawn_at),
        "is_valid": row.consent_withdrawn_at is None,
    }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class PatientSummaryOut(Schema):
    id = fields.Integer()
    birth_name = fields.String()
    first_birth_given_name = fields.String()
    used_last_name = fields.String(allow_none=True)
    birth_date = fields.Date()
    sex = fields.Enum(Sex, by_value=True)
    identity_status = fields.Function(lambda p: p.identity_status.value)
