"""The patient's satisfaction survey after a remote session (HAS, seed 002). When a teleconsultation or a
télésoin session is done, the patient is sent (SMS, or e-mail without a phone) a link to « /enquete/<token> »:
no account, a few questions, valid 14 days, answered once. The hub keeps only the token's SHA-256 hash; the link
itself travels in the outbox message that carries it, and nothing in that message says anything about health."""

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connectors import outbox
from hub.db import rows_changed, utcnow
from hub.errors import Conflict, NotFound, RuleViolation, ValidationFailed
from hub.models import SCORES, SURVEY_QUESTIONS, Appointment, AppointmentKind, SatisfactionSurvey

SURVEY_KIND = "satisfaction_survey"
VALIDITY = dt.timedelta(days=14)
MAX_COMMENT = 1000
SURVEYED_KINDS = frozenset({AppointmentKind.ASSISTED_TELECONSULTATION, AppointmentKind.TELESOIN})
ALREADY_ANSWERED = "Cette enquête a déjà reçu une réponse : merci, elle ne peut être remplie qu'une fois."
EXPIRED = "Ce lien a expiré : l'enquête ne pouvait être remplie que pendant 14 jours après la séance."
UNKNOWN = "Ce lien d'enquête n'existe pas. Vérifiez qu'il a été recopié en entier."


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite(session: Session, appointment: Appointment, *, now: dt.datetime | None = None) -> str | None:
    """Queue the survey link of a done remote session to its patient; the raw token, or None when the session is
    not remote, was already invited, or the patient has neither a phone nor an e-mail address."""
    patient = appointment.patient
    channel, recipient = ("sms", patient.phone) if patient.phone else ("email", patient.email)
    if appointment.kind not in SURVEYED_KINDS or not recipient or _survey_of(session, appointment.id) is not None:
        return None
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    survey = SatisfactionSurvey(
        cpts_id=appointment.cpts_id,
        appointment_id=appointment.id,
        token_hash=token_hash(token),
        channel=channel,
        created_at=now,
        expires_at=now + VALIDITY,
    )
    session.add(survey)
    outbox.enqueue(
        session,
        channel=channel,
        recipient=recipient,
        kind=SURVEY_KIND,
        cpts_id=appointment.cpts_id,
        payload={"recipient_kind": "patient", "survey_token": token},
        idempotency_key=f"{SURVEY_KIND}:{appointment.id}",
    )
    return token


def open_survey(session: Session, token: str, *, now: dt.datetime | None = None) -> SatisfactionSurvey:
    """The survey the token opens, if it can still be answered; otherwise a French refusal saying why."""
    survey = session.scalar(select(SatisfactionSurvey).where(SatisfactionSurvey.token_hash == token_hash(token)))
    if survey is None:
        raise NotFound(UNKNOWN)
    if survey.answered_at is not None:
        raise Conflict(ALREADY_ANSWERED)
    if (now or utcnow()) >= survey.expires_at:
        raise RuleViolation(EXPIRED)
    return survey


def answer(session: Session, token: str, answers: dict, *, now: dt.datetime | None = None) -> SatisfactionSurvey:
    """Record the answers once: the row is claimed by a conditional UPDATE, so that two answers sent at once
    give one success and one refusal."""
    now = now or utcnow()
    survey = open_survey(session, token, now=now)
    values = _checked(answers)
    claimed = rows_changed(
        session,
        update(SatisfactionSurvey)
        .where(SatisfactionSurvey.id == survey.id, SatisfactionSurvey.answered_at.is_(None))
        .values(answered_at=now, **values)
        .execution_options(synchronize_session=False),
    )
    if not claimed:
        raise Conflict(ALREADY_ANSWERED)
    session.refresh(survey)
    return survey


def _checked(answers: dict) -> dict:
    errors, values = {}, {}
    for field in SURVEY_QUESTIONS:
        score = answers.get(field)
        if score not in SCORES:
            errors[field] = "Choisissez une réponse."
        values[field] = score
    if answers.get("would_again") not in (True, False):
        errors["would_again"] = "Choisissez oui ou non."
    values["would_again"] = answers.get("would_again")
    comment = (answers.get("comment") or "").strip()
    if len(comment) > MAX_COMMENT:
        errors["comment"] = f"{MAX_COMMENT} caractères au plus."
    values["comment"] = comment or None
    if errors:
        raise ValidationFailed(errors, "Certaines réponses manquent.")
    return values


def _survey_of(session: Session, appointment_id: int) -> SatisfactionSurvey | None:
    return session.scalar(select(SatisfactionSurvey).where(SatisfactionSurvey.appointment_id == appointment_id))
