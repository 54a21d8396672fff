"""Patients and identity vigilance (RNIV): strict traits, INS, traced identity checks, consents."""

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, SQLColumnExpression, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from hub import audit
from hub.db import rows_changed, utcnow
from hub.errors import Conflict, NotFound, RuleViolation, TooManyRequests, ValidationFailed
from hub.identifiers import NAME_TRAIT_LABELS, check_name_trait, fold_name, ins_oid_for
from hub.models import (
    CLINICAL_PROFESSIONS,
    AuditEvent,
    CareTeamMember,
    Consent,
    ConsentKind,
    Delivery,
    DeliveryState,
    IdentityCheck,
    IdentityCheckKind,
    IdentityStatus,
    OutboxMessage,
    OutboxState,
    Patient,
    Profession,
    Professional,
    Report,
    Sex,
    User,
)
from hub.models.outbox import DMP_CONSENT_WITHDRAWN, IDENTITY_CHANGED

STRICT_TRAITS = ("birth_name", "first_birth_given_name", "birth_date", "sex", "birth_place_insee")
TRAIT_LABELS = {
    "birth_name": "Nom de naissance",
    "first_birth_given_name": "Premier prénom de naissance",
    "birth_date": "Date de naissance",
    "sex": "Sexe",
    "birth_place_insee": "Lieu de naissance (code INSEE)",
}
# Minors need a legal representative on record.
MAJORITY_AGE = 18


# The duplicate check tells whether a person is known to the CPTS: how many possible duplicates a user may be
# told of in an hour (an audit line each), so that it cannot serve to look people up.
DUPLICATES_TOLD_PER_HOUR = 20
DUPLICATE_CHECK = "patient.duplicate_check"


class PossibleDuplicate(Conflict):
    """A possible duplicate. The caller learns the candidates they may see (`candidates`); of the others only
    that they exist (`hidden`), for the coordination to check: neither their identity nor their ids."""

    title = "Doublon possible"
    type_slug = "possible-duplicate"

    def __init__(self, candidates: list[Patient], shown: list[Patient]):
        hidden = len(candidates) - len(shown)
        super().__init__(
            "Un patient avec des traits d'identité proches existe peut-être déjà dans la CPTS, hors de votre "
            "patientèle : demandez à la coordination de la CPTS de le vérifier avant de créer ce dossier."
            if hidden
            else "Un patient avec les mêmes traits d'identité existe déjà : vérifiez qu'il ne s'agit pas "
            "de la même personne avant d'en créer un nouveau.",
            candidate_ids=[c.id for c in shown],
        )
        self.candidates = shown
        self.hidden = hidden


def normalise_trait(value: str) -> str:
    """INS traits are compared in capitals without diacritics, with single spaces (hub.identifiers.fold_name)."""
    return fold_name(value)


def _normalise_traits(data: dict) -> dict:
    """The name traits in their stored form, refused with the field's French message when they hold a
    character the RNIV does not allow (the schemas check the same, with the same function)."""
    data, errors = dict(data), {}
    for key, label in NAME_TRAIT_LABELS.items():
        if data.get(key):
            try:
                data[key] = check_name_trait(label)(data[key])
            except ValueError as exc:
                errors[key] = str(exc)
    if errors:
        raise ValidationFailed(errors)
    return data


def check_strict_traits(data: dict, *, today: dt.date) -> None:
    errors = {
        key: f"{TRAIT_LABELS[key]} : ce trait strict est obligatoire." for key in STRICT_TRAITS if not data.get(key)
    }
    birth_date = data.get("birth_date")
    if birth_date and birth_date > today:
        errors["birth_date"] = "La date de naissance ne peut pas être dans le futur."
    if birth_date and birth_date.year < today.year - 130:
        errors["birth_date"] = "La date de naissance est invraisemblable."
    if errors:
        raise ValidationFailed(errors)


def check_matricule_matches_traits(matricule: str, data: dict) -> None:
    """A NIR carries the sex, the year and the month of birth: they must agree with the traits."""
    if matricule[0] not in "12":
        return
    errors = {}
    sex = Sex.MALE if matricule[0] == "1" else Sex.FEMALE
    if data.get("sex") and data["sex"] != Sex.INDETERMINATE and data["sex"] != sex:
        errors["ins_matricule"] = "Le matricule INS ne correspond pas au sexe saisi."
    birth_date = data.get("birth_date")
    if birth_date:
        month = int(matricule[3:5])
        if int(matricule[1:3]) != birth_date.year % 100 or (1 <= month <= 12 and month != birth_date.month):
            errors["ins_matricule"] = "Le matricule INS ne correspond pas à la date de naissance saisie."
    if errors:
        raise ValidationFailed(errors)


def find_possible_duplicates(session: Session, cpts_id: int, data: dict, *, exclude_id: int | None = None):
    """Patients of the CPTS with the same birth date and the same birth name or first given name."""
    query = select(Patient).where(
        Patient.cpts_id == cpts_id,
        Patient.birth_date == data["birth_date"],
        or_(
            Patient.birth_name == data["birth_name"],
            (Patient.first_birth_given_name == data["first_birth_given_name"]) & (Patient.sex == data["sex"]),
        ),
    )
    if exclude_id is not None:
        query = query.where(Patient.id != exclude_id)
    return list(session.scalars(query.order_by(Patient.id)))


def _check_ins_unique(session: Session, cpts_id: int, matricule: str, *, exclude_id: int | None = None) -> None:
    query = select(Patient.id).where(Patient.cpts_id == cpts_id, Patient.ins_matricule == matricule)
    if exclude_id is not None:
        query = query.where(Patient.id != exclude_id)
    if session.scalar(query) is not None:
        raise ValidationFailed({"ins_matricule": "Ce matricule INS est déjà attribué à un autre patient."})


def _check_attending_gp(session: Session, cpts_id: int, professional_id: int | None) -> None:
    if professional_id is None:
        return
    gp = session.get(Professional, professional_id)
    if gp is None or gp.cpts_id != cpts_id or gp.profession is not Profession.GENERAL_PRACTITIONER:
        raise ValidationFailed({"attending_gp_id": "Le médecin traitant doit être un médecin généraliste de la CPTS."})


def _check_minor_has_representative(data: dict, *, today: dt.date) -> None:
    birth_date = data["birth_date"]
    age = today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))
    if age < MAJORITY_AGE and not data.get("legal_representative_name"):
        raise ValidationFailed(
            {"legal_representative_name": "Un patient mineur doit avoir un représentant légal renseigné."}
        )


def create_patient(
    session: Session, actor, data: dict, *, visible: ColumnElement[bool] | None = None, duplicates_checked: bool = False
) -> Patient:
    """Create a patient with a provisional identity.

    Refuses missing strict traits, an INS that contradicts them or is already used, and a possible duplicate:
    the candidates the caller may see (`visible`: hub.auth.policies.visible_patients; none when omitted) are
    shown and may be set aside (`duplicates_checked`), the others only said to exist — the coordination checks
    them. The creating professional joins the care team, so that they keep access to the record.
    """
    today = utcnow().date()
    data = _normalise_traits(data)
    check_strict_traits(data, today=today)
    _check_minor_has_representative(data, today=today)
    _check_attending_gp(session, actor.cpts_id, data.get("attending_gp_id"))
    if data.get("ins_matricule"):
        check_matricule_matches_traits(data["ins_matricule"], data)
        _check_ins_unique(session, actor.cpts_id, data["ins_matricule"])
        data["ins_oid"] = ins_oid_for(data["ins_matricule"])
    set_aside = check_duplicates(session, actor, data, visible=visible, set_aside=duplicates_checked)
    patient = Patient(cpts_id=actor.cpts_id, identity_status=IdentityStatus.PROVISIONAL, **data)
    session.add(patient)
    session.flush()  # the audit line and the care team need the new id
    if _is_clinician(session, actor) and actor.professional_id != patient.attending_gp_id:
        session.add(
            CareTeamMember(patient_id=patient.id, professional_id=actor.professional_id, added_by_user_id=actor.id)
        )
    details = {"duplicates_set_aside": [c.id for c in set_aside]} if set_aside else None
    audit.record(session, actor=actor, action="patient.create", target=patient, details=details)
    return patient


def check_duplicates(
    session: Session, actor, data: dict, *, visible: ColumnElement[bool] | None, set_aside: bool
) -> list[Patient]:
    """The possible duplicates of the (normalised) traits the caller may see and has set aside; raises
    PossibleDuplicate when there are others, TooManyRequests past DUPLICATES_TOLD_PER_HOUR.

    The limit is checked before looking, whatever the answer would be: otherwise a refusal would tell that a
    duplicate exists."""
    told = session.execute(
        select(func.count(AuditEvent.id)).where(
            AuditEvent.actor_user_id == actor.id,
            AuditEvent.action == DUPLICATE_CHECK,
            AuditEvent.outcome == "success",
            AuditEvent.occurred_at >= utcnow() - dt.timedelta(hours=1),
        )
    ).scalar_one()
    if told >= DUPLICATES_TOLD_PER_HOUR:
        refusal = TooManyRequests(
            "Trop de recherches de doublons en une heure : réessayez plus tard, ou demandez à la coordination "
            "de la CPTS de créer ce patient."
        )
        audit.record(session, actor=actor, action=DUPLICATE_CHECK, outcome="denied", kept_on_rollback=True)
        raise refusal
    candidates = find_possible_duplicates(session, actor.cpts_id, data)
    if not candidates:
        return []
    ids = [c.id for c in candidates]
    seen = (
        set(session.scalars(select(Patient.id).where(visible, Patient.id.in_(ids)))) if visible is not None else set()
    )
    shown = [c for c in candidates if c.id in seen]
    if len(shown) < len(candidates) or not set_aside:
        for candidate in candidates:
            audit.record(
                session,
                actor=actor,
                action=DUPLICATE_CHECK,
                target=candidate,
                details={"shown": candidate in shown},
                kept_on_rollback=True,
            )
        raise PossibleDuplicate(candidates, shown)
    return shown


def _is_clinician(session: Session, actor) -> bool:
    # By id, not `actor.professional`: the API's Caller has no relationships (the identity map has it on a page).
    if actor.professional_id is None:
        return False
    return session.get_one(Professional, actor.professional_id).profession is not Profession.COORDINATOR


def update_patient(session: Session, actor, patient: Patient, changes: dict) -> Patient:
    """Apply changes; changing a strict trait or the INS voids earlier identity checks (back to PROV)."""
    changes = _normalise_traits(changes)
    merged = {key: changes.get(key, getattr(patient, key)) for key in (*STRICT_TRAITS, "legal_representative_name")}
    today = utcnow().date()
    check_strict_traits(merged, today=today)
    _check_minor_has_representative(merged, today=today)
    if "attending_gp_id" in changes:
        _check_attending_gp(session, patient.cpts_id, changes["attending_gp_id"])
    matricule = changes.get("ins_matricule", patient.ins_matricule)
    if matricule:
        check_matricule_matches_traits(matricule, merged)
        _check_ins_unique(session, patient.cpts_id, matricule, exclude_id=patient.id)
        changes["ins_oid"] = ins_oid_for(matricule)
    elif "ins_matricule" in changes:
        changes["ins_oid"] = None
    changed = sorted(key for key, value in changes.items() if getattr(patient, key) != value)
    identity_changed = any(key in (*STRICT_TRAITS, "ins_matricule") for key in changed)
    for key in changed:
        setattr(patient, key, changes[key])
    if identity_changed:
        was_qualified = patient.identity_status is IdentityStatus.QUALIFIED
        _void_identity_checks(patient)
        if was_qualified:
            # Documents waiting to leave carry the identity (and the INS) as it was: they stay in the hub.
            _stop_pending_documents(session, patient.id, reason=IDENTITY_CHANGED)
    if changed:
        audit.record(session, actor=actor, action="patient.update", target=patient, details={"fields": changed})
    return patient


def _void_identity_checks(patient: Patient) -> None:
    now = utcnow()
    for check in patient.identity_checks:
        if check.invalidated_at is None:
            check.invalidated_at = now
    patient.identity_status = IdentityStatus.PROVISIONAL


def derive_identity_status(checks: list[IdentityCheck]) -> IdentityStatus:
    kinds = {check.kind for check in checks if check.invalidated_at is None}
    document = IdentityCheckKind.DOCUMENT in kinds
    retrieved = IdentityCheckKind.INS_RETRIEVAL in kinds
    if document and retrieved:
        return IdentityStatus.QUALIFIED
    if document:
        return IdentityStatus.VALIDATED
    if retrieved:
        return IdentityStatus.RETRIEVED
    return IdentityStatus.PROVISIONAL


def record_identity_check(
    session: Session, actor, patient: Patient, *, kind: IdentityCheckKind, document_type=None, note=None
) -> IdentityCheck:
    """Trace who checked the identity, when and how; the status follows (VALI, RECUP, QUAL)."""
    if kind is IdentityCheckKind.DOCUMENT and document_type is None:
        raise ValidationFailed({"document_type": "Indiquez la pièce d'identité présentée."})
    if kind is IdentityCheckKind.INS_RETRIEVAL:
        if not patient.ins_matricule:
            raise RuleViolation("Renseignez le matricule INS retourné par le téléservice INSi avant de le tracer.")
        document_type = None
    check = IdentityCheck(
        patient=patient, kind=kind, document_type=document_type, checked_by_user_id=actor.id, note=note
    )
    session.add(check)
    before = patient.identity_status
    patient.identity_status = derive_identity_status(patient.identity_checks)
    audit.record(
        session,
        actor=actor,
        action="patient.identity_check",
        target=patient,
        details={
            "kind": kind.value,
            "status_before": before.value,
            "status_after": patient.identity_status.value,
        },
    )
    return check


def add_consent(session: Session, actor, patient: Patient, data: dict, *, zone: str) -> Consent:
    """Record a consent collected on a day (`collected_on`), at a known time (`collected_at`, its day then the
    wall-clock day in `zone`), or both; never in the future."""
    collected_at: dt.datetime | None = data.get("collected_at")
    collected_on: dt.date | None = data.get("collected_on")
    if collected_at is not None:
        if collected_at > utcnow() + dt.timedelta(minutes=5):
            raise ValidationFailed({"collected_at": "Le recueil du consentement ne peut pas être dans le futur."})
        collected_on = collected_on or collected_at.astimezone(ZoneInfo(zone)).date()
    if collected_on is None:
        raise ValidationFailed({"collected_on": "Indiquez la date du recueil du consentement."})
    if collected_on > utcnow().astimezone(ZoneInfo(zone)).date():
        raise ValidationFailed({"collected_on": "Le recueil du consentement ne peut pas être dans le futur."})
    collector_id = data.get("collected_by_professional_id") or actor.professional_id
    # The actor's own professional is of the actor's CPTS (accounts.create_user): read only another one.
    own = collector_id == actor.professional_id and actor.cpts_id == patient.cpts_id
    if collector_id is not None and not own:
        collector = session.get(Professional, collector_id)
        # Another one must be an active professional of the patient's CPTS, as a care team member or an
        # accompanying IDEL: a deactivated one no longer collects consents in its name.
        if collector is None or collector.cpts_id != patient.cpts_id or not collector.is_active:
            raise ValidationFailed(
                {"collected_by_professional_id": "Professionnel inconnu ou inactif dans la CPTS du patient."}
            )
    consent = Consent(
        patient=patient,
        kind=data["kind"],
        method=data["method"],
        collected_on=collected_on,
        collected_at=collected_at,
        collected_by_professional_id=collector_id,
        recorded_by_user_id=actor.id,
    )
    session.add(consent)
    session.flush()  # the audit line names the consent
    audit.record(
        session,
        actor=actor,
        action="consent.add",
        target=consent,
        cpts_id=patient.cpts_id,
        details={"kind": consent.kind.value},
    )
    return consent


def withdraw_consent(session: Session, actor, consent: Consent, *, reason: str) -> Consent:
    if consent.withdrawn_at is not None:
        raise Conflict("Ce consentement a déjà été retiré.")
    if not reason.strip():
        raise ValidationFailed({"reason": "Indiquez le motif du retrait."})
    consent.withdrawn_at = utcnow()
    consent.withdrawn_by_user_id = actor.id
    consent.withdrawal_reason = reason.strip()
    stopped = _stop_dmp_deposits(session, consent.patient_id) if consent.kind is ConsentKind.DMP_ACCESS else 0
    audit.record(
        session,
        actor=actor,
        action="consent.withdraw",
        target=consent,
        cpts_id=consent.patient.cpts_id,
        details={"dmp_deposits_stopped": stopped} if stopped else None,
    )
    return consent


def _stop_dmp_deposits(session: Session, patient_id: int) -> int:
    """The patient's DMP deposits still waiting in the outbox do not leave once the consent is withdrawn (one
    being sent at this very moment is already gone)."""
    return _stop_pending_documents(session, patient_id, reason=DMP_CONSENT_WITHDRAWN, channel="dmp")


def _stop_pending_documents(session: Session, patient_id: int, *, reason: str, channel: str | None = None) -> int:
    """The patient's report deliveries still waiting in the outbox become dead with the reason, so that
    « Envois » shows why they did not leave."""
    waiting = (
        select(Delivery.outbox_message_id)
        .join(Report, Report.id == Delivery.report_id)
        .where(Report.patient_id == patient_id, Delivery.state == DeliveryState.QUEUED)
    )
    if channel is not None:
        waiting = waiting.where(Delivery.channel == channel)
    return rows_changed(
        session,
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(waiting), OutboxMessage.state == OutboxState.PENDING)
        .values(state=OutboxState.DEAD, last_error=reason, lease_until=None)
        .execution_options(synchronize_session=False),
    )


def valid_consent(patient: Patient, kind: ConsentKind) -> Consent | None:
    """The patient's consent of that kind still in force (not withdrawn), if any: the one rule every check
    of a consent goes through. Reads `patient.consents`: load them with the patients when checking many."""
    return valid_consent_in(patient.consents, kind)


def consents_of(patient: Patient) -> list[Consent]:
    """The patient's consents, as valid_consent_in and consent_withdrawn_in judge them: the list is read here only, so
    that every judgement of a consent stays in this module."""
    return patient.consents


def valid_consent_in(consents: Iterable, kind: ConsentKind):
    """valid_consent among `consents`: Consent rows, or plain rows with their `kind` and `is_valid`."""
    return next((c for c in consents if c.kind == kind and c.is_valid), None)


def consent_in_force(patient_id: SQLColumnExpression[int], kind: ConsentKind) -> ColumnElement[bool]:
    """valid_consent's rule as SQL, for the patient of `patient_id` (a column of the query it goes in): whether a
    consent of that kind is in force. Change both together (Consent.is_valid). The kind is written into the SQL, not
    sent as a parameter: a prepared statement's generic plan then reads the patient's consents by their index
    rather than hashing every consent of that kind (workflows.visits)."""
    kind_written = bindparam(None, kind, type_=Consent.kind.type, literal_execute=True)
    return exists().where(
        Consent.patient_id == patient_id, Consent.kind == kind_written, Consent.withdrawn_at.is_(None)
    )


def has_valid_consent(patient: Patient, kind: ConsentKind) -> bool:
    return valid_consent(patient, kind) is not None


def consent_withdrawn(patient: Patient, kind: ConsentKind) -> bool:
    """None in force, but one was given then withdrawn: the patient said no, rather than was never asked."""
    return consent_withdrawn_in(patient.consents, kind)


def consent_withdrawn_in(consents: Iterable, kind: ConsentKind) -> bool:
    """consent_withdrawn among `consents` (valid_consent_in's)."""
    return valid_consent_in(consents, kind) is None and any(c.kind == kind for c in consents)


def search_patients(session: Session, visible, *, text=None, birth_date=None, page=1, per_page=50):
    """Patients matching the search among those the caller may see; returns (patients, total)."""
    query = select(Patient).where(visible)
    if text:
        for word in normalise_trait(text).split():
            pattern = f"%{word}%"
            query = query.where(
                or_(
                    Patient.birth_name.like(pattern),
                    Patient.first_birth_given_name.like(pattern),
                    Patient.used_last_name.like(pattern),
                    Patient.ins_matricule.like(pattern),
                )
            )
    if birth_date:
        query = query.where(Patient.birth_date == birth_date)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.scalars(query.order_by(*Patient.display_order()).limit(per_page).offset((page - 1) * per_page))
    return list(rows), total


# --- the patient's record and care team ------------------------------------------------------------------


@dataclass(frozen=True)
class PatientRecord:
    patient: Patient
    identity_checks: list[IdentityCheck]
    consents: list[Consent]
    care_team: list[CareTeamMember]
    # The users who checked the identity, recorded or withdrew a consent, by id.
    users: dict[int, User]
    # The kinds of valid check still missing before the identity is qualified (QUAL).
    missing_checks: list[IdentityCheckKind]
    # What the workflows add to the record (e.g. "pathways": the timeline), by name: see workflows.records.
    sections: Mapping[str, object] = field(default_factory=dict)


def missing_checks_for_qualification(patient: Patient) -> list[IdentityCheckKind]:
    """A qualified identity needs both a high-trust document seen and the INS retrieved (RNIV)."""
    done = {check.kind for check in patient.identity_checks if check.invalidated_at is None}
    return [kind for kind in (IdentityCheckKind.DOCUMENT, IdentityCheckKind.INS_RETRIEVAL) if kind not in done]


def care_team_of(session: Session, patient: Patient) -> list[CareTeamMember]:
    """The care team (médecin traitant aside), by name; each member's professional comes in the same query."""
    return list(
        session.scalars(
            select(CareTeamMember)
            .join(CareTeamMember.professional)
            .where(CareTeamMember.patient_id == patient.id)
            .order_by(Professional.last_name, Professional.first_name)
        )
    )


def patient_record(
    session: Session, patient: Patient, *, sections: Mapping[str, object] | None = None
) -> PatientRecord:
    """The identity, consents and care team the patient's page shows, in a fixed number of queries whatever the
    history's length; `sections` are what the workflows add (workflows.records builds the whole record).

    Reads only: the caller has checked access and audited the read."""
    consents = list(
        session.scalars(
            select(Consent)
            .where(Consent.patient_id == patient.id)
            .options(selectinload(Consent.collected_by))
            .order_by(Consent.collected_on, Consent.id)
        )
    )
    checks = list(patient.identity_checks)
    user_ids: set[int | None] = {check.checked_by_user_id for check in checks}
    user_ids |= {c.recorded_by_user_id for c in consents} | {c.withdrawn_by_user_id for c in consents}
    user_ids.discard(None)
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))} if user_ids else {}
    return PatientRecord(
        patient=patient,
        identity_checks=checks,
        consents=consents,
        care_team=care_team_of(session, patient),
        users=users,
        missing_checks=missing_checks_for_qualification(patient),
        sections=sections or {},
    )


def add_care_team_member(session: Session, actor, patient: Patient, professional_id: int) -> CareTeamMember:
    """Add an active clinician of the patient's CPTS to the care team, which lets them see the record.

    Refuses another CPTS's, an inactive or a non-clinical professional, the médecin traitant (who already
    takes part) and a member already in the team."""
    professional = session.get(Professional, professional_id)
    if (
        professional is None
        or professional.cpts_id != patient.cpts_id
        or not professional.is_active
        or professional.profession not in CLINICAL_PROFESSIONS
    ):
        raise ValidationFailed({"professional_id": "Choisissez un professionnel de santé actif de la CPTS."})
    if professional.id == patient.attending_gp_id:
        raise ValidationFailed({"professional_id": "Ce professionnel est déjà le médecin traitant du patient."})
    if session.get(CareTeamMember, (patient.id, professional.id)) is not None:
        raise ValidationFailed({"professional_id": "Ce professionnel fait déjà partie de l'équipe de soins."})
    member = CareTeamMember(patient_id=patient.id, professional_id=professional.id, added_by_user_id=actor.id)
    session.add(member)
    session.flush()  # the care relation is read back in the same unit of work
    audit.record(
        session, actor=actor, action="care_team.add", target=patient, details={"professional_id": professional.id}
    )
    return member


def remove_care_team_member(session: Session, actor, patient: Patient, professional_id: int) -> None:
    """Take a professional out of the care team; they lose access unless another care relation remains."""
    member = session.get(CareTeamMember, (patient.id, professional_id))
    if member is None:
        raise NotFound("Ce professionnel ne fait pas partie de l'équipe de soins.")
    session.delete(member)
    session.flush()  # the care relation is read back in the same unit of work
    audit.record(
        session, actor=actor, action="care_team.remove", target=patient, details={"professional_id": professional_id}
    )
