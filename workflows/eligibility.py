"""The HAS télésoin eligibility checklist (seed 002) and the steering of frail older patients to an assisted
teleconsultation (seed 003), recorded as an EligibilityAssessment before a remote session is booked.

What is refused and what is recorded:
- REFUSED, nothing saved (ValidationFailed / RuleViolation, French message): a checklist that is not
  complete — a criterion left unanswered, a primo-télésoin without its written reason, a minor whose
  parent's presence is not stated, an ineligible patient without the alternative proposed — and a request
  that no patient could be eligible for: a modality that is not remote, or a kiné's / orthophoniste's
  initial or renewal assessment (never by télésoin).
- RECORDED: a complete checklist, whatever its outcome. A criterion answered "no" (clinical situation,
  communication, tools without an aidant, physical / psychological / social factors, care needing direct
  contact or equipment not at hand, a minor without a parent or authorised adult) makes the outcome
  INELIGIBLE, kept with its French reasons and the alternative proposed (in person, home visit). A patient
  aged 65 or more with several conditions, illectronism or mobility issues who is otherwise eligible is
  steered to an ASSISTED teleconsultation (the accompanying IDEL handles the tools)."""

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit
from hub.db import utcnow
from hub.errors import RuleViolation, ValidationFailed
from hub.models import EligibilityAssessment, EligibilityOutcome, Modality, Patient
from workflows.fees import ASSESSMENTS_NEVER_REMOTE, local_day

REMOTE = frozenset({Modality.TELESOIN, Modality.ASSISTED_TELECONSULTATION})
ALTERNATIVES = {"in_person": "Soin en présentiel", "home_visit": "Déplacement à domicile"}
OUTCOME_LABELS = {
    EligibilityOutcome.ELIGIBLE: "Éligible",
    EligibilityOutcome.ASSISTED: "Orienté vers une téléconsultation assistée",
    EligibilityOutcome.INELIGIBLE: "Non éligible",
}
ACT_KINDS = {
    "follow_up": "Séance de suivi",
    "initial_assessment": "Bilan initial",
    "renewal_assessment": "Bilan de renouvellement",
}
ADULT_AGE, FRAIL_AGE = 18, 65

# Each yes/no criterion: the question (for the form) and the reason recorded when the answer is "no".
CRITERIA = {
    "clinical_situation_compatible": (
        "La situation clinique du patient est compatible avec un soin à distance",
        "La situation clinique n'est pas compatible avec un soin à distance.",
    ),
    "can_communicate_remotely": (
        "Le patient peut communiquer à distance (audition, vue, langue, compréhension)",
        "Le patient ne peut pas communiquer à distance.",
    ),
    "physical_factors_ok": (
        "Les facteurs physiques le permettent",
        "Des facteurs physiques s'opposent au soin à distance.",
    ),
    "psychological_factors_ok": (
        "Les facteurs psychologiques le permettent",
        "Des facteurs psychologiques s'opposent au soin à distance.",
    ),
    "social_factors_ok": (
        "Les facteurs sociaux le permettent (lieu calme, confidentialité, connexion)",
        "Des facteurs sociaux s'opposent au soin à distance.",
    ),
}
# The nature of the care: a "yes" here excludes remote care (HAS: direct contact, equipment not at hand).
CARE_NATURE = {
    "needs_direct_contact": (
        "Le soin nécessite un contact direct (massage, vaccination, pansement complexe…)",
        "Le soin nécessite un contact direct avec le patient.",
    ),
    "needs_equipment_not_at_hand": (
        "Le soin nécessite un équipement absent chez le patient (pose d'orthèse, appareillage…)",
        "Le soin nécessite un équipement spécifique non disponible auprès du patient.",
    ),
}
FRAILTY = {
    "several_conditions": "Plusieurs pathologies (polypathologie)",
    "illectronism": "Illectronisme",
    "mobility_issues": "Difficultés de déplacement",
}
TOOLS_REASON = "Le patient ne sait pas utiliser les outils de télésoin et aucun aidant n'est présent."
MINOR_REASON = "Le patient est mineur et aucun parent ni adulte autorisé ne sera présent."
REQUIRED = "Répondez à cette question."


@dataclass(frozen=True)
class Verdict:
    outcome: EligibilityOutcome
    reasons: list[str]
    alternative: str | None


def age_on(patient: Patient, on: dt.date) -> int:
    born = patient.birth_date
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def assess(session: Session, actor, patient: Patient, answers: dict, *, zone: str, on: dt.date | None = None):
    """Check the checklist and record it with its outcome, on `on` or the territory's today in `zone`;
    refuse (saving nothing) when it is incomplete."""
    on = on or local_day(utcnow(), zone)
    verdict = evaluate(patient, answers, on=on)
    assessment = EligibilityAssessment(
        patient_id=patient.id,
        assessed_by_user_id=actor.id,
        modality=Modality(answers["modality"]),
        answers=json.dumps(_stored(answers), sort_keys=True, ensure_ascii=False),
        outcome=verdict.outcome,
        alternative=verdict.alternative,
        reasons=json.dumps(verdict.reasons, ensure_ascii=False),
    )
    session.add(assessment)
    session.flush()  # the audit line names the new id
    audit.record(
        session,
        actor=actor,
        action="eligibility.assess",
        target=patient,
        details={"assessment_id": assessment.id, "outcome": verdict.outcome.value},
    )
    return assessment


def evaluate(patient: Patient, answers: dict, *, on: dt.date) -> Verdict:
    """The outcome of a checklist, or ValidationFailed / RuleViolation when nothing may be recorded."""
    modality = _remote_modality(answers)
    _check_act(answers)
    missing = {name: REQUIRED for name in (*CRITERIA, *CARE_NATURE, "can_use_tools") if answers.get(name) is None}
    age = age_on(patient, on)
    if age < ADULT_AGE and answers.get("parent_present") is None:
        missing["parent_present"] = "Le patient est mineur : indiquez si un parent ou un adulte autorisé sera présent."
    if answers.get("is_first_care") is None:
        missing["is_first_care"] = REQUIRED
    if missing:
        raise ValidationFailed(missing, "La liste de vérification est incomplète : rien n'a été enregistré.")
    frail = age >= FRAIL_AGE and any(answers.get(name) for name in FRAILTY)
    assisted = modality is Modality.ASSISTED_TELECONSULTATION or frail
    reasons = [reason for name, (_q, reason) in CRITERIA.items() if not answers[name]]
    reasons += [reason for name, (_q, reason) in CARE_NATURE.items() if answers[name]]
    if not (answers["can_use_tools"] or answers.get("aidant_present") or assisted):
        reasons.append(TOOLS_REASON)
    if age < ADULT_AGE and not answers["parent_present"]:
        reasons.append(MINOR_REASON)
    if reasons:
        alternative = answers.get("alternative")
        if alternative not in ALTERNATIVES:
            raise ValidationFailed(
                {"alternative": "Le patient n'est pas éligible : proposez une alternative (présentiel, domicile)."},
                "Le patient n'est pas éligible au soin à distance : rien n'est enregistré sans l'alternative proposée.",
            )
        return Verdict(EligibilityOutcome.INELIGIBLE, reasons, alternative)
    if answers["is_first_care"] and not (answers.get("first_care_reason") or "").strip():
        raise ValidationFailed(
            {"first_care_reason": "Un premier soin à distance doit être justifié : indiquez la raison."},
            "Le premier soin est de préférence en présentiel : justifiez ce premier soin à distance.",
        )
    if frail and modality is Modality.TELESOIN:
        steered = [label for name, label in FRAILTY.items() if answers.get(name)]
        reason = f"Patient de {age} ans ({', '.join(steered).lower()}) : téléconsultation assistée par un·e IDEL."
        return Verdict(EligibilityOutcome.ASSISTED, [reason], "assisted")
    if frail:
        return Verdict(EligibilityOutcome.ASSISTED, [], None)
    return Verdict(EligibilityOutcome.ELIGIBLE, [], None)


def _remote_modality(answers: dict) -> Modality:
    try:
        modality = Modality(answers.get("modality") or "")
    except ValueError:
        raise ValidationFailed({"modality": "Choisissez la modalité envisagée."}) from None
    if modality not in REMOTE:
        raise RuleViolation("La vérification d'éligibilité concerne le télésoin et la téléconsultation assistée.")
    return modality


def _check_act(answers: dict) -> None:
    if answers.get("profession") is None:
        raise ValidationFailed({"profession": "Indiquez la profession du professionnel qui réalisera le soin."})
    act = answers.get("act_kind") or "follow_up"
    if str(answers["profession"]) in ASSESSMENTS_NEVER_REMOTE and act != "follow_up":
        raise RuleViolation(
            f"Un {ACT_KINDS[act].lower()} de masso-kinésithérapie ou d'orthophonie ne se fait jamais en "
            "télésoin : programmez-le en présentiel.",
            errors={"act_kind": "Bilan initial ou de renouvellement : en présentiel uniquement."},
        )


def _stored(answers: dict) -> dict:
    return {key: (value.value if hasattr(value, "value") else value) for key, value in answers.items()}


def latest_assessment(session: Session, patient: Patient, modality: Modality) -> EligibilityAssessment | None:
    return session.scalar(_latest(patient.id, modality, EligibilityAssessment))


def _latest(patient_id, modality: Modality, *columns):
    return (
        select(*columns)
        .where(EligibilityAssessment.patient_id == patient_id, EligibilityAssessment.modality == modality)
        .order_by(EligibilityAssessment.assessed_at.desc(), EligibilityAssessment.id.desc())
        .limit(1)
    )


def verdict_columns(patient_id, modality: Modality) -> dict:
    """What require_verdict needs, as scalar subqueries (`outcome`, `alternative`, `steered`) that a booking puts in
    the one query reading all its rules' facts. `patient_id` may be a bound value or a column."""
    columns = {
        "outcome": _latest(patient_id, modality, EligibilityAssessment.outcome).scalar_subquery(),
        "alternative": _latest(patient_id, modality, EligibilityAssessment.alternative).scalar_subquery(),
    }
    if modality is Modality.ASSISTED_TELECONSULTATION:
        steered = _latest(patient_id, Modality.TELESOIN, EligibilityAssessment.outcome)
        columns["steered"] = steered.scalar_subquery()
    return columns


def reasons_of(assessment: EligibilityAssessment) -> list[str]:
    return json.loads(assessment.reasons or "[]")


class NotEligible(RuleViolation):
    """A remote booking refused for want of an eligibility that allows it. It names the patient and the
    modality (problem+json members too), so that a page can lead to the patient's checklist."""

    def __init__(self, detail: str, *, patient: Patient, modality: Modality, reason: str):
        super().__init__(detail, patient_id=patient.id, modality=modality.value, eligibility=reason)
        self.patient_id = patient.id
        self.modality = modality


def require_eligible(session: Session, patient: Patient, modality: Modality) -> EligibilityAssessment:
    """For the booking of a remote session: the latest checklist of that modality must allow it. An assisted
    teleconsultation may follow a checklist that steered the patient to it from télésoin."""
    assessment = latest_assessment(session, patient, modality)
    steered = None
    if modality is Modality.ASSISTED_TELECONSULTATION and assessment is None:
        steered = latest_assessment(session, patient, Modality.TELESOIN)
    require_verdict(
        patient,
        modality,
        outcome=assessment.outcome if assessment else None,
        alternative=assessment.alternative if assessment else None,
        steered=steered.outcome if steered else None,
    )
    allowing = assessment or steered
    assert allowing is not None  # require_verdict refuses when neither is recorded
    return allowing


def require_verdict(
    patient: Patient,
    modality: Modality,
    *,
    outcome: EligibilityOutcome | None,
    alternative: str | None,
    steered: EligibilityOutcome | None = None,
) -> None:
    """require_eligible's rule on the latest assessment's outcome and alternative for the modality (None: none
    recorded) and, for an assisted teleconsultation, the latest télésoin outcome (`steered`)."""
    if modality is Modality.ASSISTED_TELECONSULTATION and outcome is None and steered is EligibilityOutcome.ASSISTED:
        outcome = steered
    if outcome is None:
        raise NotEligible(
            "Vérifiez d'abord l'éligibilité du patient au soin à distance (liste HAS) : rien n'a été réservé.",
            patient=patient,
            modality=modality,
            reason="missing",
        )
    if outcome is EligibilityOutcome.INELIGIBLE:
        raise NotEligible(
            "Le patient n'est pas éligible au soin à distance : "
            f"{ALTERNATIVES.get(alternative or '', 'une alternative').lower()} a été proposé.",
            patient=patient,
            modality=modality,
            reason="ineligible",
        )
    if outcome is EligibilityOutcome.ASSISTED and modality is Modality.TELESOIN:
        raise NotEligible(
            "Ce patient est orienté vers une téléconsultation assistée, pas vers le télésoin.",
            patient=patient,
            modality=modality,
            reason="assisted",
        )
