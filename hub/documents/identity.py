"""How a document names its patient, its professionals and its custodian, taken from the records at the
moment it is frozen; and the one rule for the INS leaving the hub."""

from sqlalchemy.orm import Session

from hub.documents.clinical import HUB_DOCUMENT_OID_ROOT, Custodian, PatientIdentity, ProfessionalIdentity
from hub.models import PROFESSION_LABELS, Organisation, Patient, Professional


def ins_for_sending(patient: Patient) -> tuple[str, str | None] | None:
    """The INS (matricule, OID) may leave the hub only with a qualified identity (RNIV)."""
    if patient.is_qualified and patient.ins_matricule:
        return patient.ins_matricule, patient.ins_oid
    return None


def patient_identity(patient: Patient) -> PatientIdentity:
    """The INS travels only with a qualified identity; the hub's local id always does."""
    ins, ins_oid = ins_for_sending(patient) or (None, None)
    return PatientIdentity(
        birth_name=patient.birth_name,
        first_birth_given_name=patient.first_birth_given_name,
        birth_date=patient.birth_date,
        sex=patient.sex.value,
        birth_place_insee=patient.birth_place_insee,
        local_id=f"{HUB_DOCUMENT_OID_ROOT}.{patient.cpts_id}.{patient.id}",
        used_last_name=patient.used_last_name,
        used_first_name=patient.used_first_name,
        birth_given_names=patient.birth_given_names,
        ins=ins,
        ins_oid=ins_oid,
        identity_status=patient.identity_status.value,
    )


def professional_identity(professional: Professional, role: str | None = None) -> ProfessionalIdentity:
    return ProfessionalIdentity(
        rpps=professional.rpps,
        last_name=professional.last_name,
        first_name=professional.first_name,
        profession=PROFESSION_LABELS[professional.profession],
        specialty=professional.specialty,
        role=role,
        mssante_address=professional.mssante_address,
    )


def custodian_of(session: Session, cpts_id: int) -> Custodian:
    return custodian(session.get_one(Organisation, cpts_id))


def custodian(cpts: Organisation) -> Custodian:
    """The CPTS keeping the document, as read by the caller."""
    return Custodian(name=cpts.name, finess=cpts.finess, local_id=f"{HUB_DOCUMENT_OID_ROOT}.{cpts.id}")
