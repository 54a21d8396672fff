"""Each rule of the HAS checklist (seed 002) and the steering to assisted teleconsultation (seed 003).

Refused, nothing saved: incomplete answers, a primo-télésoin without reason, an ineligible patient without
the alternative, a kiné's or orthophoniste's initial or renewal assessment, a non-remote modality.
Recorded: every complete checklist; an ineligible one keeps its reasons and the alternative proposed."""

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from hub.errors import RuleViolation, ValidationFailed
from hub.models import EligibilityAssessment, EligibilityOutcome, Modality, Profession, Role
from tests import ZONE, factories
from workflows import eligibility

TODAY = dt.date(2026, 11, 23)
COMPLETE = {
    "modality": Modality.TELESOIN,
    "profession": Profession.NURSE,
    "act_kind": "follow_up",
    "clinical_situation_compatible": True,
    "can_communicate_remotely": True,
    "can_use_tools": True,
    "aidant_present": False,
    "physical_factors_ok": True,
    "psychological_factors_ok": True,
    "social_factors_ok": True,
    "needs_direct_contact": False,
    "needs_equipment_not_at_hand": False,
    "is_first_care": False,
    "several_conditions": False,
    "illectronism": False,
    "mobility_issues": False,
}


@pytest.fixture
def actor(db_session, cpts):
    return factories.user(db_session, cpts, Role.PROFESSIONAL)


@pytest.fixture
def adult(db_session, cpts):
    return factories.patient(db_session, cpts, birth_date=dt.date(1980, 5, 1))


def saved(session) -> int:
    return session.scalar(select(func.count()).select_from(EligibilityAssessment))


def refused(session, actor, patient, answers, error=ValidationFailed):
    before = saved(session)
    with pytest.raises(error) as caught:
        eligibility.assess(session, actor, patient, answers, on=TODAY, zone=ZONE)
    assert saved(session) == before
    return caught.value


def test_a_complete_favourable_checklist_is_recorded_eligible(db_session, actor, adult):
    assessment = eligibility.assess(db_session, actor, adult, COMPLETE, on=TODAY, zone=ZONE)
    assert assessment.outcome is EligibilityOutcome.ELIGIBLE and assessment.alternative is None
    assert json.loads(assessment.answers)["modality"] == "telesoin"
    assert eligibility.latest_assessment(db_session, adult, Modality.TELESOIN) == assessment
    assert eligibility.latest_assessment(db_session, adult, Modality.ASSISTED_TELECONSULTATION) is None


# Each yes/no rule: unanswered → refused, nothing saved; the unfavourable answer → ineligible, recorded with
# its reason and the alternative; that answer without the alternative → refused, nothing saved.
RULES = [
    ("clinical_situation_compatible", False, "La situation clinique n'est pas compatible"),
    ("can_communicate_remotely", False, "ne peut pas communiquer à distance"),
    ("physical_factors_ok", False, "facteurs physiques"),
    ("psychological_factors_ok", False, "facteurs psychologiques"),
    ("social_factors_ok", False, "facteurs sociaux"),
    ("needs_direct_contact", True, "contact direct"),
    ("needs_equipment_not_at_hand", True, "équipement spécifique"),
]


@pytest.mark.parametrize(("name", "unfavourable", "reason"), RULES, ids=[r[0] for r in RULES])
def test_each_rule(db_session, actor, adult, name, unfavourable, reason):
    error = refused(db_session, actor, adult, {k: v for k, v in COMPLETE.items() if k != name})
    assert error.errors[name] == "Répondez à cette question."
    assert "rien n'a été enregistré" in error.detail
    answers = COMPLETE | {name: unfavourable}
    error = refused(db_session, actor, adult, answers)
    assert "proposez une alternative" in error.errors["alternative"]
    assessment = eligibility.assess(
        db_session, actor, adult, answers | {"alternative": "home_visit"}, on=TODAY, zone=ZONE
    )
    assert assessment.outcome is EligibilityOutcome.INELIGIBLE and assessment.alternative == "home_visit"
    assert any(reason in r for r in eligibility.reasons_of(assessment))


def test_tools_without_an_aidant_make_the_patient_ineligible_an_aidant_makes_them_eligible(db_session, actor, adult):
    refused(db_session, actor, adult, {k: v for k, v in COMPLETE.items() if k != "can_use_tools"})
    assessment = eligibility.assess(
        db_session, actor, adult, COMPLETE | {"can_use_tools": False, "alternative": "in_person"}, on=TODAY, zone=ZONE
    )
    assert assessment.outcome is EligibilityOutcome.INELIGIBLE
    assert eligibility.reasons_of(assessment) == [eligibility.TOOLS_REASON]
    helped = eligibility.assess(
        db_session, actor, adult, COMPLETE | {"can_use_tools": False, "aidant_present": True}, zone=ZONE
    )
    assert helped.outcome is EligibilityOutcome.ELIGIBLE


def test_a_primo_telesoin_needs_a_written_reason(db_session, actor, adult):
    error = refused(db_session, actor, adult, COMPLETE | {"is_first_care": True})
    assert error.errors["first_care_reason"].startswith("Un premier soin à distance doit être justifié")
    refused(db_session, actor, adult, {k: v for k, v in COMPLETE.items() if k != "is_first_care"})
    answers = COMPLETE | {"is_first_care": True, "first_care_reason": "Patient à 60 km, sans transport"}
    assert (
        eligibility.assess(db_session, actor, adult, answers, on=TODAY, zone=ZONE).outcome
        is EligibilityOutcome.ELIGIBLE
    )


@pytest.mark.parametrize("profession", [Profession.PHYSIOTHERAPIST, Profession.SPEECH_THERAPIST])
@pytest.mark.parametrize("act_kind", ["initial_assessment", "renewal_assessment"])
def test_kine_and_orthophoniste_never_assess_by_telesoin(db_session, actor, adult, profession, act_kind):
    error = refused(
        db_session, actor, adult, COMPLETE | {"profession": profession, "act_kind": act_kind}, RuleViolation
    )
    assert "ne se fait jamais en télésoin" in error.detail
    follow_up = eligibility.assess(db_session, actor, adult, COMPLETE | {"profession": profession}, on=TODAY, zone=ZONE)
    assert follow_up.outcome is EligibilityOutcome.ELIGIBLE


def test_a_minor_needs_a_parent_or_authorised_adult(db_session, actor, cpts):
    child = factories.patient(db_session, cpts, birth_date=dt.date(2015, 3, 1))
    error = refused(db_session, actor, child, COMPLETE)
    assert "mineur" in error.errors["parent_present"]
    refused(db_session, actor, child, COMPLETE | {"parent_present": False})  # ineligible: the alternative first
    alone = eligibility.assess(
        db_session, actor, child, COMPLETE | {"parent_present": False, "alternative": "in_person"}, on=TODAY, zone=ZONE
    )
    assert alone.outcome is EligibilityOutcome.INELIGIBLE
    assert eligibility.reasons_of(alone) == [eligibility.MINOR_REASON]
    with_parent = eligibility.assess(db_session, actor, child, COMPLETE | {"parent_present": True}, on=TODAY, zone=ZONE)
    assert with_parent.outcome is EligibilityOutcome.ELIGIBLE


def test_an_older_patient_with_illectronism_is_steered_to_assisted_teleconsultation(db_session, actor, cpts):
    elder = factories.patient(db_session, cpts, birth_date=dt.date(1950, 1, 1))
    answers = COMPLETE | {"illectronism": True, "can_use_tools": False}
    assessment = eligibility.assess(db_session, actor, elder, answers, on=TODAY, zone=ZONE)
    assert assessment.outcome is EligibilityOutcome.ASSISTED and assessment.alternative == "assisted"
    assert "téléconsultation assistée" in eligibility.reasons_of(assessment)[0]


@pytest.mark.parametrize("frailty", ["several_conditions", "mobility_issues"])
def test_an_older_patient_with_several_conditions_or_mobility_issues_is_steered(db_session, actor, cpts, frailty):
    elder = factories.patient(db_session, cpts, birth_date=dt.date(1955, 1, 1))
    assessment = eligibility.assess(db_session, actor, elder, COMPLETE | {frailty: True}, on=TODAY, zone=ZONE)
    assert assessment.outcome is EligibilityOutcome.ASSISTED


def test_a_younger_patient_with_illectronism_is_not_steered(db_session, actor, adult):
    assessment = eligibility.assess(db_session, actor, adult, COMPLETE | {"illectronism": True}, on=TODAY, zone=ZONE)
    assert assessment.outcome is EligibilityOutcome.ELIGIBLE


def test_only_remote_modalities_are_assessed(db_session, actor, adult):
    error = refused(db_session, actor, adult, COMPLETE | {"modality": Modality.IN_PERSON}, RuleViolation)
    assert "télésoin" in error.detail
    refused(db_session, actor, adult, {k: v for k, v in COMPLETE.items() if k != "modality"})


def test_booking_a_remote_session_requires_a_favourable_checklist(db_session, actor, cpts, adult):
    with pytest.raises(RuleViolation, match="Vérifiez d'abord l'éligibilité"):
        eligibility.require_eligible(db_session, adult, Modality.TELESOIN)
    eligibility.assess(
        db_session, actor, adult, COMPLETE | {"needs_direct_contact": True, "alternative": "in_person"}, zone=ZONE
    )
    with pytest.raises(RuleViolation, match="soin en présentiel a été proposé"):
        eligibility.require_eligible(db_session, adult, Modality.TELESOIN)
    elder = factories.patient(db_session, cpts, birth_date=dt.date(1950, 1, 1))
    eligibility.assess(db_session, actor, elder, COMPLETE | {"mobility_issues": True}, on=TODAY, zone=ZONE)
    with pytest.raises(RuleViolation, match="orienté vers une téléconsultation assistée"):
        eligibility.require_eligible(db_session, elder, Modality.TELESOIN)
    assert eligibility.require_eligible(db_session, elder, Modality.ASSISTED_TELECONSULTATION).outcome is (
        EligibilityOutcome.ASSISTED
    )
