import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.auth.policies import visible_patients
from hub.documents.identity import ins_for_sending
from hub.errors import RuleViolation, ValidationFailed
from hub.models import (
    AuditEvent,
    CareTeamMember,
    ConsentKind,
    ConsentMethod,
    IdentityCheckKind,
    IdentityDocumentType,
    IdentityStatus,
    Patient,
    Profession,
    Role,
    Sex,
)
from hub.services import identity
from tests import factories

BIRTH = dt.date(1948, 3, 14)


def traits(**overrides):
    values = {
        "birth_name": "Lacoste",
        "first_birth_given_name": "Hélène",
        "birth_date": BIRTH,
        "sex": Sex.FEMALE,
        "birth_place_insee": "24571",
    }
    return values | overrides


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def test_create_patient_normalises_traits_and_starts_provisional(db_session, coordinator):
    patient = identity.create_patient(db_session, coordinator, traits())
    assert patient.birth_name == "LACOSTE"
    assert patient.first_birth_given_name == "HELENE"
    assert patient.identity_status is IdentityStatus.PROVISIONAL
    db_session.commit()
    assert db_session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == "patient.create"


@pytest.mark.parametrize("missing", identity.STRICT_TRAITS)
def test_each_strict_trait_is_required_and_nothing_is_saved(db_session, coordinator, missing):
    before = count(db_session, Patient)
    with pytest.raises(ValidationFailed) as caught:
        identity.create_patient(db_session, coordinator, traits(**{missing: None}))
    assert "trait strict est obligatoire" in caught.value.errors[missing]
    assert count(db_session, Patient) == before


def test_birth_date_in_the_future_is_refused(db_session, coordinator):
    with pytest.raises(ValidationFailed) as caught:
        identity.create_patient(db_session, coordinator, traits(birth_date=dt.date(2999, 1, 1)))
    assert "futur" in caught.value.errors["birth_date"]


def test_matricule_must_agree_with_sex_and_birth_date(db_session, coordinator):
    male_nir = factories.valid_nir(sex=Sex.MALE, birth_date=BIRTH, birth_place="24571")
    with pytest.raises(ValidationFailed, match="invalides") as caught:
        identity.create_patient(db_session, coordinator, traits(ins_matricule=male_nir))
    assert "sexe" in caught.value.errors["ins_matricule"]
    other_year = factories.valid_nir(sex=Sex.FEMALE, birth_date=dt.date(1949, 3, 14), birth_place="24571")
    with pytest.raises(ValidationFailed) as caught:
        identity.create_patient(db_session, coordinator, traits(ins_matricule=other_year))
    assert "date de naissance" in caught.value.errors["ins_matricule"]


def test_same_ins_twice_is_refused(db_session, coordinator):
    nir = factories.valid_nir(sex=Sex.FEMALE, birth_date=BIRTH, birth_place="24571")
    identity.create_patient(db_session, coordinator, traits(ins_matricule=nir))
    with pytest.raises(ValidationFailed) as caught:
        identity.create_patient(
            db_session, coordinator, traits(birth_name="Autre", ins_matricule=nir), duplicates_checked=True
        )
    assert "déjà attribué" in caught.value.errors["ins_matricule"]


def test_possible_duplicate_is_shown_before_creation(db_session, coordinator):
    visible = visible_patients(coordinator)
    first = identity.create_patient(db_session, coordinator, traits())
    with pytest.raises(identity.PossibleDuplicate) as caught:
        identity.create_patient(db_session, coordinator, traits(birth_name="LACOSTE "), visible=visible)
    assert caught.value.candidates == [first] and caught.value.hidden == 0
    second = identity.create_patient(db_session, coordinator, traits(), visible=visible, duplicates_checked=True)
    assert second.id != first.id


def test_candidates_the_caller_may_not_see_are_only_counted_and_never_set_aside(db_session, coordinator):
    identity.create_patient(db_session, coordinator, traits())
    for checked in (False, True):
        with pytest.raises(identity.PossibleDuplicate) as caught:
            identity.create_patient(db_session, coordinator, traits(), duplicates_checked=checked)
        assert caught.value.candidates == [] and caught.value.hidden == 1
        assert caught.value.extra == {"candidate_ids": []}


def test_duplicates_are_looked_for_within_the_cpts_only(db_session, coordinator):
    other_cpts = factories.cpts(db_session)
    identity.create_patient(db_session, factories.user(db_session, other_cpts, Role.COORDINATOR), traits())
    identity.create_patient(db_session, coordinator, traits())


def test_minor_needs_a_legal_representative(db_session, coordinator):
    child = traits(birth_date=factories.now().date() - dt.timedelta(days=365 * 8))
    with pytest.raises(ValidationFailed) as caught:
        identity.create_patient(db_session, coordinator, child)
    assert "représentant légal" in caught.value.errors["legal_representative_name"]
    identity.create_patient(db_session, coordinator, child | {"legal_representative_name": "Mme LACOSTE"})


def test_attending_gp_must_be_a_gp_of_the_cpts(db_session, cpts, coordinator):
    nurse = factories.professional(db_session, cpts, Profession.NURSE)
    with pytest.raises(ValidationFailed) as caught:
        identity.create_patient(db_session, coordinator, traits(attending_gp_id=nurse.id))
    assert "médecin généraliste" in caught.value.errors["attending_gp_id"]


def test_creating_professional_joins_the_care_team(db_session, cpts):
    nurse = factories.user(db_session, cpts, Role.PROFESSIONAL)
    patient = identity.create_patient(db_session, nurse, traits())
    member = db_session.scalar(select(CareTeamMember).where(CareTeamMember.patient_id == patient.id))
    assert member.professional_id == nurse.professional_id


@pytest.mark.parametrize(
    ("kinds", "status"),
    [
        ((), IdentityStatus.PROVISIONAL),
        ((IdentityCheckKind.DOCUMENT,), IdentityStatus.VALIDATED),
        ((IdentityCheckKind.INS_RETRIEVAL,), IdentityStatus.RETRIEVED),
        ((IdentityCheckKind.DOCUMENT, IdentityCheckKind.INS_RETRIEVAL), IdentityStatus.QUALIFIED),
        ((IdentityCheckKind.INS_RETRIEVAL, IdentityCheckKind.DOCUMENT), IdentityStatus.QUALIFIED),
    ],
)
def test_identity_status_follows_the_traced_checks(db_session, coordinator, kinds, status):
    nir = factories.valid_nir(sex=Sex.FEMALE, birth_date=BIRTH, birth_place="24571")
    patient = identity.create_patient(db_session, coordinator, traits(ins_matricule=nir))
    for kind in kinds:
        identity.record_identity_check(
            db_session, coordinator, patient, kind=kind, document_type=IdentityDocumentType.PASSPORT
        )
    assert patient.identity_status is status
    assert (ins_for_sending(patient) is not None) is (status is IdentityStatus.QUALIFIED)


def test_document_check_needs_the_document_type(db_session, coordinator):
    patient = identity.create_patient(db_session, coordinator, traits())
    with pytest.raises(ValidationFailed):
        identity.record_identity_check(db_session, coordinator, patient, kind=IdentityCheckKind.DOCUMENT)


def test_ins_retrieval_needs_a_matricule(db_session, coordinator):
    patient = identity.create_patient(db_session, coordinator, traits())
    with pytest.raises(RuleViolation):
        identity.record_identity_check(db_session, coordinator, patient, kind=IdentityCheckKind.INS_RETRIEVAL)


def test_changing_a_strict_trait_voids_the_checks(db_session, coordinator):
    nir = factories.valid_nir(sex=Sex.FEMALE, birth_date=BIRTH, birth_place="24571")
    patient = identity.create_patient(db_session, coordinator, traits(ins_matricule=nir))
    for kind in IdentityCheckKind:
        identity.record_identity_check(
            db_session, coordinator, patient, kind=kind, document_type=IdentityDocumentType.NATIONAL_ID_CARD
        )
    assert patient.is_qualified
    identity.update_patient(db_session, coordinator, patient, {"phone": "0612345678"})
    assert patient.is_qualified
    identity.update_patient(db_session, coordinator, patient, {"first_birth_given_name": "Helena"})
    assert patient.identity_status is IdentityStatus.PROVISIONAL
    assert all(check.invalidated_at is not None for check in patient.identity_checks)


def test_consent_is_recorded_and_withdrawn(db_session, coordinator):
    patient = identity.create_patient(db_session, coordinator, traits())
    consent = identity.add_consent(
        db_session,
        coordinator,
        patient,
        {"kind": ConsentKind.TELEHEALTH, "method": ConsentMethod.ORAL, "collected_at": factories.now()},
        zone="Europe/Paris",
    )
    assert identity.has_valid_consent(patient, ConsentKind.TELEHEALTH)
    identity.withdraw_consent(db_session, coordinator, consent, reason="Le patient préfère le présentiel")
    assert not identity.has_valid_consent(patient, ConsentKind.TELEHEALTH)


def test_a_withdrawn_consent_gives_way_to_a_new_one(db_session, coordinator):
    patient = identity.create_patient(db_session, coordinator, traits())
    oral = {"kind": ConsentKind.TELEHEALTH, "method": ConsentMethod.ORAL, "collected_at": factories.now()}
    first = identity.add_consent(db_session, coordinator, patient, oral, zone="Europe/Paris")
    identity.withdraw_consent(db_session, coordinator, first, reason="Retrait")
    assert identity.valid_consent(patient, ConsentKind.TELEHEALTH) is None
    second = identity.add_consent(db_session, coordinator, patient, oral, zone="Europe/Paris")
    assert identity.valid_consent(patient, ConsentKind.TELEHEALTH) is second
    assert identity.valid_consent(patient, ConsentKind.DMP_ACCESS) is None


def test_consents_are_judged_valid_in_one_place_only():
    """Every check of a patient's consent goes through identity.valid_consent: no module reads the list itself."""
    root = Path(__file__).resolve().parents[2]
    readers = [
        str(path.relative_to(root))
        for package in ("hub", "workflows", "scheduling", "connectors")
        for path in (root / package).rglob("*.py")
        if re.search(r"\b(?!Patient\b)\w+\.consents\b", path.read_text(encoding="utf-8"))
    ]
    assert readers == ["hub/services/identity.py"]


def test_consent_in_the_future_is_refused(db_session, coordinator):
    patient = identity.create_patient(db_session, coordinator, traits())
    with pytest.raises(ValidationFailed):
        identity.add_consent(
            db_session,
            coordinator,
            patient,
            {
                "kind": ConsentKind.TELEHEALTH,
                "method": ConsentMethod.ORAL,
                "collected_at": factories.now() + dt.timedelta(days=2),
            },
            zone="Europe/Paris",
        )


def test_an_admin_cannot_lock_themselves_out(db_session, cpts):
    from hub.services import accounts

    admin = factories.user(db_session, cpts, Role.ADMIN)
    with pytest.raises(RuleViolation):
        accounts.deactivate_user(db_session, admin, admin)
    with pytest.raises(RuleViolation):
        accounts.reset_totp(db_session, admin, admin)
