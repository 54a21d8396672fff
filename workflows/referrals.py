"""The GP's referral (adressage): draft, submission with the patient's consent, the coordination's triage
(accept, reject with the reason, schedule into a slot of the target program), cancellation, and done when
its appointment is. One function per verb: it checks the transition and its guards, changes the rows,
writes the audit line and tells the GP (an e-mail without health data)."""

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, contains_eager, joinedload, selectinload

from connectors import outbox
from hub import audit
from hub.auth.policies import can_view_patient, visible_patients
from hub.db import utcnow
from hub.documents import pdf, store
from hub.errors import RuleViolation, ValidationFailed
from hub.models import (
    REFERRAL_STATE_LABELS,
    URGENCY_RANK,
    Actor,
    Appointment,
    AppointmentKind,
    AppointmentState,
    AttachmentKind,
    AuditEvent,
    Consent,
    ConsentKind,
    ConsentMethod,
    Modality,
    Patient,
    PlaceKind,
    Profession,
    Professional,
    Referral,
    ReferralAttachment,
    ReferralState,
    SessionProgram,
    Slot,
    SlotState,
    Urgency,
    User,
)
from hub.services.care import care_team_member
from hub.services.identity import add_consent, create_patient, valid_consent
from scheduling.slots import has_seat_left
from workflows import accompaniment, appointments, attachments, eligibility, freed_slots
from workflows.attachments import StoredFile
from workflows.machine import Machine

S = ReferralState
MACHINE = Machine(
    "l'adressage",
    {
        "update": (frozenset({S.DRAFT}), S.DRAFT),
        "submit": (frozenset({S.DRAFT}), S.SUBMITTED),
        "accept": (frozenset({S.SUBMITTED}), S.ACCEPTED),
        "reject": (frozenset({S.SUBMITTED}), S.REJECTED),
        "schedule": (frozenset({S.ACCEPTED}), S.SCHEDULED),
        "cancel": (frozenset({S.DRAFT, S.SUBMITTED, S.ACCEPTED}), S.CANCELLED),
        "complete": (frozenset({S.SCHEDULED}), S.DONE),
        # Its session did not take place, its performer absent (workflows.attendance): to schedule again.
        "reopen": (frozenset({S.SCHEDULED}), S.ACCEPTED),
    },
    REFERRAL_STATE_LABELS,
)
NEEDS = {
    "illectronisme": "Illectronisme",
    "mobilite_reduite": "Mobilité réduite",
    "audition": "Troubles de l'audition",
    "interprete": "Interprète",
    "aidant": "Aidant",
}
# Attachments may be added while the referral is still to be handled.
ATTACHABLE = frozenset({S.DRAFT, S.SUBMITTED, S.ACCEPTED})
LETTER_FIELDS = ("reason", "current_treatment", "history", "free_text")


# --- the GP's draft and submission ------------------------------------------------------------------------


def create(
    session: Session,
    actor: Actor,
    data: dict,
    *,
    new_patient: dict | None = None,
    confirm_new_patient: bool = False,
) -> Referral:
    """A draft referral by a GP, to a program of the CPTS or a specialist, for a patient they can see — or for
    a patient created here from their strict traits (`new_patient`), under identity vigilance: a possible
    duplicate is refused (hub.services.identity.PossibleDuplicate) until the GP confirms it is another person.
    The GP who creates the patient joins their care team."""
    author = _check_author(session, actor)
    patient = _referred_patient(session, actor, data.get("patient_id"), new_patient, confirm=confirm_new_patient)
    referral = Referral(
        cpts_id=author.cpts_id,
        patient_id=patient.id,
        patient=patient,
        author_id=author.id,
        author=author,
        created_by_user_id=actor.id,
        reason="",
        state=S.DRAFT,
    )
    _apply(session, referral, data)
    session.add(referral)
    session.flush()
    audit.record(session, actor=actor, action="referral.create", target=referral, cpts_id=referral.cpts_id)
    return referral


def _referred_patient(session: Session, actor: Actor, patient_id, new_patient: dict | None, *, confirm: bool):
    if new_patient:
        if patient_id:
            raise ValidationFailed({"patient_id": "Choisissez un patient existant ou créez-en un, pas les deux."})
        return create_patient(session, actor, new_patient, visible=visible_patients(actor), duplicates_checked=confirm)
    if not patient_id:
        raise ValidationFailed({"patient_id": MISSING["patient_id"]})
    patient = session.get(Patient, patient_id)
    if patient is None or not can_view_patient(session, actor, patient):
        raise ValidationFailed({"patient_id": "Patient inconnu ou hors de votre patientèle."})
    return patient


def update(session: Session, actor: Actor, referral: Referral, data: dict) -> Referral:
    MACHINE.target("update", referral.state)
    _apply(session, referral, data)
    audit.record(session, actor=actor, action="referral.update", target=referral, cpts_id=referral.cpts_id)
    return referral


def _check_author(session: Session, actor: Actor) -> Professional:
    author = session.get(Professional, actor.professional_id) if actor.professional_id else None
    if author is None or author.profession is not Profession.GENERAL_PRACTITIONER:
        raise RuleViolation("Seul·e un·e médecin généraliste peut adresser un patient.")
    return author


def _apply(session: Session, referral: Referral, data: dict) -> None:
    errors = {}
    if "target_program_id" in data or "target_specialist_id" in data:
        program_id, specialist_id = data.get("target_program_id"), data.get("target_specialist_id")
        if program_id and specialist_id:
            errors["target_program_id"] = "Choisissez un programme ou un spécialiste, pas les deux."
        elif program_id:
            program = session.get(SessionProgram, program_id)
            if program is None or program.cpts_id != referral.cpts_id or not program.is_active:
                errors["target_program_id"] = "Programme inconnu dans la CPTS."
        elif specialist_id:
            specialist = session.get(Professional, specialist_id)
            if (
                specialist is None
                or specialist.cpts_id != referral.cpts_id
                or specialist.profession is not Profession.SPECIALIST
                or not specialist.is_active
            ):
                errors["target_specialist_id"] = "Spécialiste inconnu dans la CPTS."
        referral.target_program_id, referral.target_specialist_id = program_id or None, specialist_id or None
    needs = data.get("needs")
    if needs is not None:
        unknown = [n for n in needs if n not in NEEDS]
        if unknown:
            errors["needs"] = "Besoin inconnu : " + ", ".join(unknown) + "."
        referral.needs = json.dumps(sorted(set(needs)))
    if errors:
        raise ValidationFailed(errors)
    for field in LETTER_FIELDS:
        if field in data:
            value = (data[field] or "").strip()
            setattr(referral, field, value if value or field == "reason" else None)
    if data.get("urgency") is not None:
        referral.urgency = Urgency(data["urgency"])


def submit(
    session: Session, actor: Actor, referral: Referral, *, consent_collected_on: dt.date | None = None, zone: str
) -> Referral:
    """Send the referral to the coordination: it needs a reason, a target and the patient's telehealth
    consent — recorded here from the date the GP collected it, or an existing valid one."""
    lock(session, referral)
    target = MACHINE.target("submit", referral.state)
    patient = referral.patient
    existing = valid_consent(patient, ConsentKind.TELEHEALTH)
    errors = _missing(
        reason=referral.reason,
        has_target=referral.target_program_id is not None or referral.target_specialist_id is not None,
        has_consent=consent_collected_on is not None or existing is not None,
    )
    if errors:
        raise ValidationFailed(errors)
    if consent_collected_on is not None:
        consent = add_consent(
            session,
            actor,
            patient,
            {"kind": ConsentKind.TELEHEALTH, "method": ConsentMethod.ORAL, "collected_on": consent_collected_on},
            zone=zone,
        )
    else:
        assert existing is not None  # refused above: a valid consent or the date it was collected
        consent = existing
    referral.consent_id = consent.id
    referral.state = target
    referral.submitted_at = utcnow()
    audit.record(session, actor=actor, action="referral.submit", target=referral, cpts_id=referral.cpts_id)
    return referral


MISSING = {
    "patient_id": "Choisissez un de vos patients, ou saisissez les traits d'un nouveau patient.",
    "reason": "Indiquez le motif de l'adressage.",
    "target_program_id": "Choisissez à qui adresser le patient : un programme ou un spécialiste.",
    "consent_collected_on": "Indiquez la date du recueil du consentement du patient à la télésanté.",
}


def _missing(*, reason: str | None, has_target: bool, has_consent: bool) -> dict[str, str]:
    missing = {
        "reason": not (reason or "").strip(),
        "target_program_id": not has_target,
        "consent_collected_on": not has_consent,
    }
    return {field: MISSING[field] for field, is_missing in missing.items() if is_missing}


def missing_to_send(session: Session, actor: User, data: dict, *, new_patient: bool) -> dict[str, str]:
    """Each field a referral still lacks to be sent from the GP's form, by name, so that an empty form says all
    that is missing at once (the patient, the reason, the target, the consent's date) rather than only the
    first thing the creation would refuse. The patient's consent in force stands for the date."""
    patient = session.get(Patient, data["patient_id"]) if data.get("patient_id") else None
    if patient is not None and not can_view_patient(session, actor, patient):
        patient = None  # create() refuses it by name
    consent = patient is not None and valid_consent(patient, ConsentKind.TELEHEALTH) is not None
    errors = _missing(
        reason=data.get("reason"),
        has_target=bool(data.get("target_program_id") or data.get("target_specialist_id")),
        has_consent=data.get("consent_collected_on") is not None or consent,
    )
    if not data.get("patient_id") and not new_patient:
        errors = {"patient_id": MISSING["patient_id"]} | errors
    return errors


def attach(
    session: Session,
    actor: Actor,
    referral: Referral,
    *,
    kind,
    content: bytes,
    filename: str | None,
    upload_dir: Path,
    max_bytes: int,
) -> ReferralAttachment:
    """Check and store an uploaded document (type, size), then attach it to the referral."""
    stored = store.store_upload(upload_dir, content, filename, max_bytes=max_bytes)
    if referral.state not in ATTACHABLE:
        raise RuleViolation(f"Action impossible : l'adressage est « {REFERRAL_STATE_LABELS[referral.state]} ».")
    attachment = ReferralAttachment(
        referral_id=referral.id, kind=AttachmentKind(kind), uploaded_by_user_id=actor.id, **stored
    )
    session.add(attachment)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="referral.attach",
        target=referral,
        cpts_id=referral.cpts_id,
        details={"attachment_id": attachment.id, "kind": attachment.kind.value},
    )
    return attachment


def read_attachment(
    session: Session, actor: Actor, referral: Referral, attachment_id: int, *, upload_dir: Path
) -> StoredFile:
    """A document of a referral the actor may read (a 404 if it is not one of the referral's); audited."""
    attachment = session.get(ReferralAttachment, attachment_id)
    return attachments.read_attachment(
        session,
        actor,
        referral,
        attachment if attachment is not None and attachment.referral_id == referral.id else None,
        requested_id=attachment_id,
        action="referral.attachment_read",
        table="referral_attachments",
        upload_dir=upload_dir,
    )


def proposed_specialist(session: Session, patient: Patient) -> Professional | None:
    """The patient's own cardiologist, proposed first (seed 004: « respecte le cardiologue du patient »)."""
    return care_team_member(
        session, patient, Profession.SPECIALIST, func.lower(Professional.specialty).like("%cardio%")
    )


# --- the coordination's triage ----------------------------------------------------------------------------


def accept(session: Session, actor: Actor, referral: Referral) -> Referral:
    lock(session, referral)
    referral.state = MACHINE.target("accept", referral.state)
    referral.accepted_at = utcnow()
    audit.record(session, actor=actor, action="referral.accept", target=referral, cpts_id=referral.cpts_id)
    _tell_author(session, referral, "referral_accepted")
    return referral


def reject(session: Session, actor: Actor, referral: Referral, *, reason: str) -> Referral:
    lock(session, referral)
    target = MACHINE.target("reject", referral.state)
    if not (reason or "").strip():
        raise ValidationFailed({"reason": "Indiquez la raison du refus : elle est transmise au médecin."})
    referral.state = target
    referral.rejection_reason = reason.strip()[:500]
    audit.record(session, actor=actor, action="referral.reject", target=referral, cpts_id=referral.cpts_id)
    _tell_author(session, referral, "referral_rejected")
    return referral


def schedule(
    session: Session,
    actor: Actor,
    referral: Referral,
    *,
    slot: Slot | None,  # as looked up from the form: refused when unknown
    upload_dir: Path,
    place_kind: PlaceKind | None = None,
    accompanying: Professional | None = None,
    now: dt.datetime | None = None,
) -> Appointment:
    """Book the referred patient into a slot of the target program, at the place chosen (by default the one
    the patient's needs call for, workflows.accompaniment.suggested_place) with the professional chosen (by
    default the patient's own IDEL, as the booking proposes).
    The referral is `scheduled` only once the booking is made: a conflict leaves it `accepted`. Its letter
    (96349-6) is then frozen: rendered once and stored under its hash, the appointment's document."""
    lock(session, referral)
    target = MACHINE.target("schedule", referral.state)
    slot = _slot_of_target(referral, slot, field="slot_id")
    with session.begin_nested():  # a refused booking leaves nothing behind, the referral stays accepted
        appointment = appointments.book(
            session,
            actor,
            slot=slot,
            patient=referral.patient,
            place_kind=place_kind or accompaniment.suggested_place(slot.program, needs_of(referral)),
            accompanying=accompanying,
            now=now,
        )
    referral.appointment_id = appointment.id
    referral.state = target
    referral.scheduled_at = utcnow()
    _freeze_letter(session, referral, upload_dir, zone=slot.program.zone)
    audit.record(
        session,
        actor=actor,
        action="referral.schedule",
        target=referral,
        cpts_id=referral.cpts_id,
        details={"appointment_id": appointment.id, "letter_sha256": referral.letter_sha256},
    )
    _tell_author(session, referral, "referral_scheduled")
    return appointment


def _slot_of_target(referral: Referral, slot: Slot | None, *, field: str) -> Slot:
    if slot is None or slot.program.cpts_id != referral.cpts_id:
        raise ValidationFailed({field: "Créneau inconnu dans la CPTS."})
    if referral.target_program_id is not None and slot.program_id != referral.target_program_id:
        raise ValidationFailed({field: "Choisissez un créneau du programme visé par l'adressage."})
    if referral.target_specialist_id is not None and slot.program.performer_id != referral.target_specialist_id:
        raise ValidationFailed({field: "Choisissez un créneau du spécialiste visé par l'adressage."})
    return slot


def slot_for(session: Session, referral: Referral, slot_id: int, *, field: str = "slot") -> Slot:
    """A slot of the referral's target (its program, or a program its specialist performs), else refused."""
    return _slot_of_target(referral, session.get(Slot, slot_id), field=field)


def accompanying_by_id(session: Session, referral: Referral, professional_id: int | None) -> Professional | None:
    """The accompanying professional a form or the API names, refused by field when not one of the CPTS."""
    if not professional_id:
        return None
    professional = session.get(Professional, professional_id)
    if professional is None or professional.cpts_id != referral.cpts_id:
        raise ValidationFailed({"accompanying_id": "Professionnel inconnu dans la CPTS."})
    return professional


def _freeze_letter(session: Session, referral: Referral, upload_dir: Path, *, zone: str) -> None:
    content = letter_of(session, referral, zone=zone)
    referral.letter_sha256 = store.store_blob(upload_dir, content)
    referral.letter_size = len(content)


def letter_of(session: Session, referral: Referral, *, zone: str) -> bytes:
    """The referral letter as it reads now (a draft's, on demand), dated in `zone`; once scheduled, read the
    frozen one."""
    program = session.get(SessionProgram, referral.target_program_id) if referral.target_program_id else None
    return pdf.referral_letter(referral, program_name=program.name if program else None, zone=zone)


def letters_by_appointment(session: Session, appointment_ids) -> dict[int, Referral]:
    """The referrals whose frozen letter is a document of these appointments, by appointment id (one query)."""
    ids = set(appointment_ids)
    if not ids:
        return {}
    found = session.scalars(
        select(Referral).where(Referral.appointment_id.in_(ids), Referral.letter_sha256.is_not(None))
    )
    return {referral.appointment_id: referral for referral in found if referral.appointment_id is not None}


def reopen(session: Session, actor: Actor, referral: Referral) -> None:
    """Back to « à programmer » when its session was postponed: the coordination schedules it again from its page,
    which freezes its letter anew for the new session."""
    lock(session, referral)
    referral.state = MACHINE.target("reopen", referral.state)
    referral.appointment_id, referral.scheduled_at = None, None
    audit.record(session, actor=actor, action="referral.reopen", target=referral, cpts_id=referral.cpts_id)


def cancel(session: Session, actor: Actor, referral: Referral, *, reason: str) -> Referral:
    lock(session, referral)
    target = MACHINE.target("cancel", referral.state)
    if not (reason or "").strip():
        raise ValidationFailed({"reason": "Indiquez le motif de l'annulation."})
    referral.state = target
    referral.cancel_reason = reason.strip()[:500]
    audit.record(session, actor=actor, action="referral.cancel", target=referral, cpts_id=referral.cpts_id)
    freed_slots.referral_cancelled(session, actor, referral.id, now=utcnow())
    if actor.professional_id != referral.author_id:
        _tell_author(session, referral, "referral_cancelled")
    return referral


def mark_done(session: Session, actor: Actor, referral: Referral) -> Referral:
    """The referral is done when its appointment is (the appointment's completion may call this)."""
    lock(session, referral)
    target = MACHINE.target("complete", referral.state)
    appointment = session.get(Appointment, referral.appointment_id) if referral.appointment_id else None
    if appointment is None or appointment.state is not AppointmentState.DONE:
        raise RuleViolation("Le rendez-vous de l'adressage n'a pas encore eu lieu.")
    referral.state = target
    referral.done_at = utcnow()
    audit.record(session, actor=actor, action="referral.done", target=referral, cpts_id=referral.cpts_id)
    _tell_author(session, referral, "referral_done")
    return referral


def done_for_appointment(session: Session, actor: Actor, appointment: Appointment) -> Referral | None:
    """The referral booked in this appointment, done with it (called by workflows.completion)."""
    referral = session.scalar(select(Referral).where(Referral.appointment_id == appointment.id))
    if referral is not None and referral.state is S.SCHEDULED:
        mark_done(session, actor, referral)
    return referral


def _tell_author(session: Session, referral: Referral, kind: str) -> None:
    """The GP is told in the hub (the referral's state) and by e-mail: a link, no health data."""
    author = referral.author or session.get(Professional, referral.author_id)
    outbox.email_professional(
        session, author, kind=kind, payload={"referral_id": referral.id}, key=str(referral.id), cpts_id=referral.cpts_id
    )


# --- lists ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferralRow:
    referral: Referral
    program: SessionProgram | None
    appointment: Appointment | None
    waiting: dt.timedelta | None


def _rows(session: Session, referrals: list[Referral], now: dt.datetime) -> list[ReferralRow]:
    """Programs and appointments of the listed referrals, one query each (P6)."""
    program_ids = {r.target_program_id for r in referrals} - {None}
    appointment_ids = {r.appointment_id for r in referrals} - {None}
    # Looked up with each referral's target and appointment, which may be None.
    programs: dict[int | None, SessionProgram] = (
        {p.id: p for p in session.scalars(select(SessionProgram).where(SessionProgram.id.in_(program_ids)))}
        if program_ids
        else {}
    )
    booked: dict[int | None, Appointment] = (
        {a.id: a for a in session.scalars(select(Appointment).where(Appointment.id.in_(appointment_ids)))}
        if appointment_ids
        else {}
    )
    return [
        ReferralRow(
            referral=r,
            program=programs.get(r.target_program_id),
            appointment=booked.get(r.appointment_id),
            waiting=now - r.submitted_at if r.submitted_at and r.state is S.SUBMITTED else None,
        )
        for r in referrals
    ]


def _listing(query):
    return query.options(
        joinedload(Referral.patient),
        joinedload(Referral.author),
        joinedload(Referral.target_specialist),
        selectinload(Referral.attachments),
    )


def triage_queue(session: Session, cpts_id: int, *, now: dt.datetime | None = None) -> list[ReferralRow]:
    """The CPTS's submitted referrals, the most urgent first, then the oldest, with their waiting time."""
    now = now or utcnow()
    rank = case({u.value: r for u, r in URGENCY_RANK.items()}, value=Referral.urgency)
    query = _listing(
        select(Referral)
        .where(Referral.cpts_id == cpts_id, Referral.state == S.SUBMITTED)
        .order_by(rank, Referral.submitted_at, Referral.id)
    )
    return _rows(session, list(session.scalars(query).unique()), now)


def referrals_of(session: Session, where, *, now: dt.datetime | None = None, limit: int = 200, offset: int = 0):
    """(rows, total) of the referrals matching `where` (e.g. hub.auth.policies.visible_referrals), newest first."""
    now = now or utcnow()
    total = session.execute(select(func.count()).select_from(Referral).where(where)).scalar_one()
    query = _listing(select(Referral).where(where).order_by(Referral.created_at.desc(), Referral.id.desc()))
    referrals = list(session.scalars(query.limit(limit).offset(offset)).unique())
    return _rows(session, referrals, now), total


def free_slots_for(
    session: Session,
    referrals_: list[Referral],
    *,
    now: dt.datetime | None = None,
    limit: int = 10,
    horizon: dt.timedelta = dt.timedelta(days=90),
) -> dict[int, list[Slot]]:
    """The next open, unbooked slots each referral may be scheduled into (of its target program, or of a
    program its target specialist performs), by referral id; one query whatever the number of referrals."""
    now = now or utcnow()
    program_ids = {r.target_program_id for r in referrals_} - {None}
    specialist_ids = {r.target_specialist_id for r in referrals_} - {None}
    if not program_ids and not specialist_ids:
        return {r.id: [] for r in referrals_}
    slots = session.scalars(
        select(Slot)
        .join(SessionProgram, SessionProgram.id == Slot.program_id)
        .options(contains_eager(Slot.program))
        .where(
            or_(SessionProgram.id.in_(program_ids), SessionProgram.performer_id.in_(specialist_ids)),
            SessionProgram.is_active.is_(True),
            Slot.state == SlotState.OPEN,
            Slot.starts_at > now,
            Slot.starts_at < now + horizon,
            has_seat_left(),  # a group session's slot with seats left is still offered
        )
        .order_by(Slot.starts_at)
    ).all()
    found = {}
    for referral in referrals_:
        fits = [
            slot
            for slot in slots
            if slot.program.cpts_id == referral.cpts_id
            and (
                slot.program_id == referral.target_program_id
                or (referral.target_specialist_id and slot.program.performer_id == referral.target_specialist_id)
            )
        ]
        found[referral.id] = fits[:limit]
    return found


def lock(session: Session, referral: Referral) -> None:
    """Take the referral's row lock and re-read it: of two coordinators scheduling one referral at once,
    the second sees it `scheduled` and is refused. SQLite's BEGIN IMMEDIATE already serialises writers."""
    # The lock and the fresh row with what the verbs read (the patient's consents) and the answer shows (the
    # attachments, by a second SELECT: a second joined collection would multiply the rows).
    session.execute(
        select(Referral)
        .where(Referral.id == referral.id)
        .options(
            joinedload(Referral.patient, innerjoin=True).joinedload(Patient.consents),
            selectinload(Referral.attachments),
        )
        .with_for_update(of=Referral)
        .execution_options(populate_existing=True)
    ).unique().one()


# --- the referral's page ----------------------------------------------------------------------------------

# The steps of a referral's life the page's history tells, from its audit lines.
HISTORY_LABELS = {
    "referral.create": "Brouillon créé",
    "referral.update": "Brouillon modifié",
    "referral.attach": "Document joint",
    "referral.submit": "Envoyé à la coordination",
    "referral.accept": "Accepté par la coordination",
    "referral.reject": "Refusé",
    "referral.schedule": "Programmé",
    "referral.cancel": "Annulé",
    "referral.done": "Réalisé",
}


@dataclass(frozen=True)
class HistoryEntry:
    at: dt.datetime
    label: str
    by: str


@dataclass(frozen=True)
class ReferralDetail:
    referral: Referral
    program: SessionProgram | None
    appointment: Appointment | None
    consent: Consent | None
    needs_labels: list[str]
    events: list[HistoryEntry]  # the referral's states over time


def needs_of(referral: Referral) -> list[str]:
    return json.loads(referral.needs or "[]")


def detail(session: Session, referral: Referral) -> ReferralDetail:
    """What the referral's page and `GET /api/v1/referrals/<id>` show: the letter's target, the appointment once
    scheduled, the consent it was sent with, the patient's needs in words and the history of its states (who
    did what, when, from the audit log). Reads only: the caller has checked access and audits the read."""
    program = session.get(SessionProgram, referral.target_program_id) if referral.target_program_id else None
    appointment = session.get(Appointment, referral.appointment_id) if referral.appointment_id else None
    consent = session.get(Consent, referral.consent_id) if referral.consent_id else None
    needs = [NEEDS.get(need, need) for need in needs_of(referral)]
    return ReferralDetail(referral, program, appointment, consent, needs, _history(session, referral))


def _history(session: Session, referral: Referral) -> list[HistoryEntry]:
    events = session.execute(
        select(AuditEvent.occurred_at, AuditEvent.action, User.display_name)
        .outerjoin(User, User.id == AuditEvent.actor_user_id)
        .where(
            AuditEvent.target_type == Referral.__tablename__,
            AuditEvent.target_id == str(referral.id),
            AuditEvent.outcome == "success",
            AuditEvent.action.in_(tuple(HISTORY_LABELS)),
        )
        .order_by(AuditEvent.id)
    ).all()
    return [HistoryEntry(at, HISTORY_LABELS[action], name or "Le hub") for at, action, name in events]


def target_program(session: Session, referral: Referral, slot: Slot | None = None) -> SessionProgram | None:
    """The program the referral will be booked in: its target, or the chosen slot's (a referral to a specialist)."""
    if slot is not None:
        return slot.program
    return session.get(SessionProgram, referral.target_program_id) if referral.target_program_id else None


def eligibility_modality(program: SessionProgram | None) -> Modality | None:
    """The HAS checklist's modality a session of the program needs; None for an in-person one."""
    if program is None or program.appointment_kind not in appointments.REMOTE_KINDS:
        return None
    return Modality(program.appointment_kind.value)


def eligibility_done(session: Session, referral: Referral, program: SessionProgram | None) -> bool:
    """Whether the patient's latest checklist lets the referral be booked in the program (nothing to check for
    an in-person program, or before the target program is known)."""
    modality = eligibility_modality(program)
    if modality is None:
        return True
    try:
        eligibility.require_eligible(session, referral.patient, modality)
    except eligibility.NotEligible:
        return False
    return True


def eligibility_prefill(referral: Referral, program: SessionProgram | None) -> dict:
    """The checklist's answers the referral already gives: the modality and the profession of the program, the
    patient's needs (illectronism, reduced mobility, an aidant); the coordinator answers the rest."""
    needs = set(needs_of(referral))
    modality = eligibility_modality(program)
    values: dict = {"modality": modality.value if modality else AppointmentKind.ASSISTED_TELECONSULTATION.value}
    performer = program.performer if program is not None else referral.target_specialist
    if performer is not None:
        values["profession"] = performer.profession.value
    if "illectronisme" in needs:
        values |= {"illectronism": True, "can_use_tools": False}
    if "mobilite_reduite" in needs:
        values["mobility_issues"] = True
    if "aidant" in needs:
        values["aidant_present"] = True
    return values
