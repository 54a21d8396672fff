"""Object-level checks: a permission AND a relation to the object. Deny by default."""

import functools
from collections.abc import Sequence

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    and_,
    bindparam,
    exists,
    false,
    func,
    inspect,
    literal_column,
    select,
)
from sqlalchemy.orm import Session, joinedload

from hub import audit, row_locks
from hub.auth.permissions import Permission, has_permission
from hub.db import driver_rows
from hub.errors import NotFound
from hub.models import (
    Appointment,
    AppointmentKind,
    CarePathway,
    Consent,
    Patient,
    Profession,
    Referral,
    Report,
    ReportState,
    Role,
    TeleexpertiseRequest,
    TeleexpertiseState,
    User,
    VisitOffer,
    VisitOfferState,
)
from hub.services import accounts
from hub.services.care import has_care_relation, in_care_of, patient_ids_in_care_of


def _sees_whole_cpts(user) -> bool:
    return user.has_role(Role.COORDINATOR)


def can_view_patient(session: Session, user, patient: Patient) -> bool:
    if not has_permission(user, Permission.PATIENTS_READ) or patient.cpts_id != user.cpts_id:
        return False
    if _sees_whole_cpts(user):
        return True
    return user.professional_id is not None and has_care_relation(session, user.professional_id, patient)


def can_edit_patient(session: Session, user, patient: Patient) -> bool:
    return has_permission(user, Permission.PATIENTS_WRITE) and can_view_patient(session, user, patient)


# The read of one patient with its consents, built once: the statement and its cache key cost more Python time
# than the round trip, and it runs on every read of a record. The care relation is a column of the same SELECT.
_PATIENT_IN_CPTS = (
    select(Patient)
    .where(Patient.id == bindparam("patient_id"), Patient.cpts_id == bindparam("cpts_id"))
    .options(joinedload(Patient.consents))
)
_PATIENT_IN_CARE = _PATIENT_IN_CPTS.add_columns(in_care_of(bindparam("professional_id")).label("in_care"))


def visible_patient(session: Session, user, patient_id: int, *, write: bool = False) -> Patient | None:
    """The patient, with its consents, if the user may see it (or edit it, with `write`), else None: the rule of
    `can_view_patient` / `can_edit_patient` in one round trip."""
    if not has_permission(user, Permission.PATIENTS_READ):
        return None
    if write and not has_permission(user, Permission.PATIENTS_WRITE):
        return None
    where = {"patient_id": patient_id, "cpts_id": user.cpts_id}
    if _sees_whole_cpts(user):
        return session.execute(_PATIENT_IN_CPTS, where).unique().scalar_one_or_none()
    if user.professional_id is None:
        return None
    found = session.execute(_PATIENT_IN_CARE, where | {"professional_id": user.professional_id}).unique().one_or_none()
    return found[0] if found is not None and found.in_care else None


# The same read as plain rows, for a view that shows the record as it is (the API's GET): one row per consent (one
# with NULL consent columns when there is none), in the consents' order. Turning the rows into ORM objects cost
# more CPU than the statement (P1).
_RECORD_COLUMNS = (
    Patient.id,
    Patient.birth_name,
    Patient.first_birth_given_name,
    Patient.birth_given_names,
    Patient.birth_date,
    Patient.sex,
    Patient.birth_place_insee,
    Patient.used_last_name,
    Patient.used_first_name,
    Patient.identity_status,
    Patient.ins_matricule,
    Patient.ins_oid,
    Patient.phone,
    Patient.commune_insee,
    Patient.attending_gp_id,
    Consent.id.label("consent_id"),
    Consent.kind.label("consent_kind"),
    Consent.method.label("consent_method"),
    Consent.collected_on.label("consent_collected_on"),
    Consent.collected_at.label("consent_collected_at"),
    Consent.collected_by_professional_id.label("consent_collected_by_professional_id"),
    Consent.withdrawn_at.label("consent_withdrawn_at"),
)
_RECORD_IN_CPTS = (
    select(*_RECORD_COLUMNS)
    .outerjoin(Consent, Consent.patient_id == Patient.id)
    .where(Patient.id == bindparam("patient_id"), Patient.cpts_id == bindparam("cpts_id"))
    .order_by(Consent.collected_on, Consent.id)
)
_RECORD_IN_CARE = _RECORD_IN_CPTS.add_columns(in_care_of(bindparam("professional_id")).label("in_care"))


# The caller's professional as the outer query's column, named in SQL: SQLAlchemy does not correlate a column
# into the SELECTs of a derived table (in_care_of's union), and would add `users` to each of their FROMs.
_CALLER_PROFESSIONAL = literal_column("users.professional_id", Integer)
# The record's read joined to the Bearer token's lookup (accounts.CALLER_OF_TOKEN): the patient API's light read
# in one round trip (hub.http.access.light_read's preload). The patient is joined in the caller's CPTS and only for
# a usable token; whether the caller may see it is decided by `visible_patient_record`, from the caller's roles,
# as for `_RECORD_IN_CPTS` and `_RECORD_IN_CARE`. One row per role and consent.
RECORD_WITH_CALLER = (
    accounts.CALLER_OF_TOKEN.add_columns(*_RECORD_COLUMNS, in_care_of(_CALLER_PROFESSIONAL).label("in_care"))
    .outerjoin(
        Patient,
        and_(Patient.id == bindparam("patient_id"), Patient.cpts_id == User.cpts_id, accounts.TOKEN_USABLE),
    )
    .outerjoin(Consent, Consent.patient_id == Patient.id)
    .order_by(Consent.collected_on, Consent.id)
)


def visible_patient_record(
    session: Session, user, patient_id: int, *, preloaded: Sequence[Row] | None = None
) -> Sequence[Row] | None:
    """The rows of `_RECORD_COLUMNS` of the patient and its consents if the user may see it, else None: the rule of
    `visible_patient` (read) in one round trip, without ORM objects. `preloaded`: the rows of `RECORD_WITH_CALLER`
    that authenticated the user, read instead of running the statement again."""
    if not has_permission(user, Permission.PATIENTS_READ):
        return None
    if _sees_whole_cpts(user):
        rows = (
            _record_of(preloaded)
            if preloaded is not None
            else driver_rows(session, _RECORD_IN_CPTS, {"patient_id": patient_id, "cpts_id": user.cpts_id})
        )
    elif user.professional_id is None:
        return None
    else:
        if preloaded is not None:
            rows = _record_of(preloaded)
        else:
            where = {"patient_id": patient_id, "cpts_id": user.cpts_id, "professional_id": user.professional_id}
            rows = driver_rows(session, _RECORD_IN_CARE, where)
        if rows and not rows[0].in_care:
            return None
    return rows or None


def _record_of(preloaded: Sequence[Row]) -> list[Row]:
    """The record's rows out of the roles × consents of `RECORD_WITH_CALLER`: those of its first role, in the
    consents' order; none when the patient was not joined."""
    role = preloaded[0].role
    return [row for row in preloaded if row.id is not None and row.role == role]


def visible_patients(user) -> ColumnElement[bool]:
    """The WHERE clause of the patients a user may list."""
    if not has_permission(user, Permission.PATIENTS_READ):
        return false()
    in_cpts = Patient.cpts_id == user.cpts_id
    if _sees_whole_cpts(user):
        return in_cpts
    if user.professional_id is None:
        return false()
    related = patient_ids_in_care_of(user.professional_id)
    return in_cpts & Patient.id.in_(related.select())


# What each verb on an appointment needs from the role; the relation to the appointment comes on top.
APPOINTMENT_VERBS = {
    "read": Permission.APPOINTMENTS_READ,
    "confirm": Permission.VISITS_RESPOND,
    "decline": Permission.VISITS_RESPOND,
    "check_in": Permission.VISITS_RESPOND,
    "complete": Permission.VISITS_RESPOND,
    "degrade": Permission.VISITS_RESPOND,
    "no_show": Permission.VISITS_RESPOND,
    "record_consent": Permission.VISITS_RESPOND,
    "checklist": Permission.VISITS_RESPOND,
    "record_rituals": Permission.VISITS_RESPOND,
    "record_incident": Permission.VISITS_RESPOND,
    "read_session": Permission.APPOINTMENTS_READ,  # its rituals and incidents
    "read_record": Permission.APPOINTMENTS_READ,  # the patient's address, phones, referral letter and documents
    "cancel": Permission.APPOINTMENTS_BOOK,
    "attendance": Permission.VISITS_RESPOND,  # who was there (workflows.attendance)
    "read_attendance": Permission.APPOINTMENTS_READ,
    "video": Permission.APPOINTMENTS_READ,  # the room's address (workflows.video)
    "send_video_link": Permission.VISITS_RESPOND,  # the patient's link, through the outbox
    "reassign": Permission.APPOINTMENTS_BOOK,
}
_ANSWERING = frozenset({"confirm", "decline"})
# Reading the visit (when and where, not the patient's record) comes before the answer.
_BEFORE_ANSWERING = frozenset({"read"})
# An IDEL a visit is only offered to (the second round asks several at once) sees the patient's record and writes
# to it once she has accepted; the accompanying IDEL (the first asked) records the consent that lets her confirm.
_RUNNING = frozenset(
    {
        "check_in",
        "complete",
        "degrade",
        "no_show",
        "read_session",
        "read_record",
        "record_consent",
        "attendance",
        "read_attendance",
        "send_video_link",
    }
)
# What happened in the session is told by those who took part in it, not by the coordination.
# The video room is joined by those who take part in the session; the coordination sends the patient's link.
_PARTICIPANTS_ONLY = frozenset({"record_rituals", "record_incident", "checklist", "video"})


def can_act_on_appointment(session: Session, user, appointment: Appointment, verb: str) -> bool:
    """Coordinators of the CPTS: any verb but telling what happened in the session (its checklist, rituals,
    incidents). An IDEL the visit is offered to (a télésoin's performer): read when and where, confirm, decline.
    The performer or the accompanying IDEL: read the patient's record, record the missing consent, run the session
    (its checklist first), record its rituals and incidents, read them. Nobody else."""
    permission = APPOINTMENT_VERBS.get(verb)
    if permission is None or not has_permission(user, permission) or appointment.cpts_id != user.cpts_id:
        return False
    professional_id = user.professional_id
    participant = professional_id is not None and professional_id in (
        appointment.performer_id,
        appointment.accompanying_id,
    )
    if verb in _PARTICIPANTS_ONLY:
        return participant
    if _sees_whole_cpts(user):
        return True
    if professional_id is None:
        return False
    if verb in _RUNNING or (verb in _BEFORE_ANSWERING and participant):
        return participant
    if verb in _ANSWERING or verb in _BEFORE_ANSWERING:
        return _answers_for(session, appointment, professional_id)
    return False


def _answers_for(session: Session, appointment: Appointment, professional_id: int) -> bool:
    """Who answers a proposed session: its accompanying IDEL or one it is offered to; for a télésoin, which has
    nobody accompanying, its performer."""
    if professional_id == appointment.accompanying_id:
        return True
    if appointment.kind is AppointmentKind.TELESOIN and professional_id == appointment.performer_id:
        return True
    return _is_offered_to(session, appointment, professional_id)


def _is_offered_to(session: Session, appointment: Appointment, professional_id: int) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    VisitOffer.appointment_id == appointment.id,
                    VisitOffer.professional_id == professional_id,
                    VisitOffer.state == VisitOfferState.PENDING,
                )
            )
        )
    )


def appointment_for(
    session: Session,
    user,
    appointment_id: int,
    verb: str,
    *,
    load: Sequence = (),
    lock: bool = False,
    lock_as_performer: bool = False,
) -> Appointment:
    """`load`: the loader options of what the caller reads next (its relationships), loaded with the row — a module
    constant: the statements are cached by the options' identity (two `joinedload(X)` are not equal), so options
    built per call would miss the cache at every request and push its useful entries out. `lock`:
    the row read under its lock, for a verb whose workflow locks it first (hub.row_locks: it reads it once).
    `lock_as_performer`: locked only if the user performs the session (a report's author, reports.begin_report);
    anyone else's read without the lock, for the workflow to refuse them as before."""
    if lock_as_performer:
        row = _locked(session, user, Appointment, appointment_id, load, "performer_id")
        row = row if row is not None else _read(session, user, Appointment, appointment_id, load)
    else:
        row = _get(session, user, Appointment, appointment_id, load, lock)
    allowed = row is not None and can_act_on_appointment(session, user, row, verb)
    return _found(session, user, row, allowed, verb, kind="appointment", table="appointments", row_id=appointment_id)


def appointment_row_for(session: Session, user, appointment_id: int, row, verb: str):
    """`appointment_for(…, verb)` of an appointment read as a plain row (None: none of that id in the user's CPTS)
    with the columns the rule reads (cpts_id, kind, performer_id, accompanying_id): the same rule, the same 404 and
    audit rows, without an ORM entity."""
    allowed = row is not None and can_act_on_appointment(session, user, row, verb)
    return _found(session, user, row, allowed, verb, kind="appointment", table="appointments", row_id=appointment_id)


def _get(session: Session, user, model, row_id: int, load: Sequence, lock: bool, professional: str | None = None):
    if lock:
        return _locked(session, user, model, row_id, load, professional)
    return _read(session, user, model, row_id, load)


def _read(session: Session, user, model, row_id: int, load: Sequence):
    """The row if it is of the user's CPTS (else None, as the access rule would refuse it), with `load`. A row the
    session already holds is taken from it, without a statement, as session.get would."""
    if inspect(model).identity_key_from_primary_key((row_id,)) in session.identity_map:
        return session.get(model, row_id, options=load)
    statement = _reading_statement(model, tuple(load))
    return session.execute(statement, {"row_id": row_id, "cpts_id": user.cpts_id}).unique().scalar_one_or_none()


# Built once per model and loaders, as `_locking_statement`: session.get built a SELECT and its cache key at every
# read of an appointment or a report (GET appointment, twice per teleconsultation, and most verbs on it).
@functools.lru_cache(maxsize=64)
def _reading_statement(model, load: tuple):
    return select(model).where(model.id == bindparam("row_id"), model.cpts_id == bindparam("cpts_id")).options(*load)


def _locked(session: Session, user, model, row_id: int, load: Sequence, professional: str | None = None):
    """The row read under its lock, if it is of the user's CPTS and, when `professional` names one of its columns,
    the user's professional is in it; else None. The cheap half of the access rule is in the locking SELECT,
    checked before the lock is taken: a row the user may not act on is neither locked nor waited for (a probe's
    wait would tell that it exists and is busy), at no extra statement."""
    statement = _locking_statement(model, tuple(load), professional)
    parameters = {"row_id": row_id, "cpts_id": user.cpts_id, "professional_id": user.professional_id}
    row = session.execute(statement, parameters).unique().scalar_one_or_none()
    if row is not None:
        row_locks.mark(session, row)
    return row


# Built once per model, loaders and column, with bound parameters: the writes that lock their row (confirm, the
# report's draft, update and signature) built it and its cache key at every request, ~0.2 ms of CPU. Bounded: a
# caller passing loader options made per call would otherwise add an entry per request.
@functools.lru_cache(maxsize=64)
def _locking_statement(model, load: tuple, professional: str | None):
    # A NULL professional_id matches no row (the columns named are NOT NULL), as `column == None` matched none.
    only = () if professional is None else (getattr(model, professional) == bindparam("professional_id"),)
    # OF the row's table: the loaders' outer joins cannot be locked (PostgreSQL), and need not be.
    return (
        select(model)
        .where(model.id == bindparam("row_id"), model.cpts_id == bindparam("cpts_id"), *only)
        .options(*load)
        .with_for_update(of=model)
        .execution_options(populate_existing=True)
    )


def _found(session: Session, user, row, allowed: bool, verb: str, *, kind: str, table: str, row_id: int):
    """`row` when the user may `verb` it, else a 404 as if it did not exist (no IDOR oracle), the refusal
    audited even though the request's changes roll back. A read is audited here; the workflows audit the verbs
    they run."""
    if not allowed:
        raise NotFound(f"{NOUNS[kind]} introuvable.", audit_action=f"{kind}.{verb}", audit_target=(table, row_id))
    if verb == "read":
        # The target as the row's own would give it (its table, its id), a plain row's too.
        audit.record(session, actor=user, action=f"{kind}.read", target=(table, row_id), cpts_id=row.cpts_id)
    return row


NOUNS = {
    "appointment": "Rendez-vous",
    "referral": "Adressage",
    "teleexpertise": "Demande de téléexpertise",
    "report": "Compte rendu",
}


# What each verb on a referral needs from the role; the relation to the referral comes on top.
REFERRAL_VERBS = {
    "read": Permission.REFERRALS_READ,
    "update": Permission.REFERRALS_WRITE,
    "submit": Permission.REFERRALS_WRITE,
    "attach": Permission.REFERRALS_WRITE,
    "cancel": Permission.REFERRALS_READ,  # the author (write) or the coordination (triage), checked below
    "accept": Permission.REFERRALS_TRIAGE,
    "reject": Permission.REFERRALS_TRIAGE,
    "schedule": Permission.REFERRALS_TRIAGE,
}
_AUTHOR_VERBS = frozenset({"update", "submit", "attach"})


def can_act_on_referral(user, referral: Referral, verb: str) -> bool:
    """Coordinators of the CPTS: read, triage, cancel. The author GP: read, write, cancel. The targeted
    specialist, and the professionals of the session it was scheduled into: read. Nobody else."""
    permission = REFERRAL_VERBS.get(verb)
    if permission is None or not has_permission(user, permission) or referral.cpts_id != user.cpts_id:
        return False
    if has_permission(user, Permission.REFERRALS_TRIAGE) and _sees_whole_cpts(user):
        return verb not in _AUTHOR_VERBS
    professional_id = user.professional_id
    if professional_id is None:
        return False
    author = professional_id == referral.author_id and has_permission(user, Permission.REFERRALS_WRITE)
    if verb in _AUTHOR_VERBS or verb == "cancel":
        return author
    if verb == "read":
        return (
            author or professional_id == referral.target_specialist_id or _runs_its_session(referral, professional_id)
        )
    return False


def _runs_its_session(referral: Referral, professional_id: int) -> bool:
    """Once scheduled, the session's performer and accompanying IDEL read the referral they act on, letter
    and attachments included, even when it was addressed to a program rather than to them."""
    appointment = referral.appointment
    return appointment is not None and professional_id in (appointment.performer_id, appointment.accompanying_id)


def visible_referrals(user) -> ColumnElement[bool]:
    """The WHERE clause of the referrals a user may list: the CPTS's for the coordination, one's own
    (written or addressed to one) for a professional."""
    if not has_permission(user, Permission.REFERRALS_READ):
        return false()
    in_cpts = Referral.cpts_id == user.cpts_id
    if _sees_whole_cpts(user):
        return in_cpts
    if user.professional_id is None:
        return false()
    return in_cpts & (
        (Referral.author_id == user.professional_id) | (Referral.target_specialist_id == user.professional_id)
    )


def referral_for(session: Session, user, referral_id: int, verb: str) -> Referral:
    row = session.get(Referral, referral_id)
    allowed = row is not None and can_act_on_referral(user, row, verb)
    return _found(session, user, row, allowed, verb, kind="referral", table="referrals", row_id=referral_id)


def pathway_for(session: Session, user, pathway_id: int, *, action: str = "pathway.read") -> CarePathway:
    """The care pathway if the user may manage pathways and see its patient, else 404 (audited). A read is
    audited here; the workflows audit the verbs they run."""
    pathway = session.get(CarePathway, pathway_id)
    patient = session.get(Patient, pathway.patient_id) if pathway is not None else None
    if (
        pathway is None
        or patient is None
        or not has_permission(user, Permission.PATHWAYS_MANAGE)
        or not can_view_patient(session, user, patient)
    ):
        raise NotFound("Parcours introuvable.", audit_action=action, audit_target=("care_pathways", pathway_id))
    if action == "pathway.read":
        audit.record(session, actor=user, action=action, target=pathway, cpts_id=pathway.cpts_id)
    return pathway


# What each verb on a téléexpertise request needs from the role; the relation to the request comes on top.
TELEEXPERTISE_VERBS = {
    "read": Permission.TELEEXPERTISE_READ,
    "assign": Permission.TELEEXPERTISE_READ,  # the coordination (assign) or an expert taking it (answer): below
    "start": Permission.TELEEXPERTISE_ANSWER,
    "answer": Permission.TELEEXPERTISE_ANSWER,
    "decline": Permission.TELEEXPERTISE_ANSWER,
    "close": Permission.TELEEXPERTISE_REQUEST,
}
_EXPERT_VERBS = frozenset({"read", "assign", "start", "answer", "decline"})
_POOL_VERBS = frozenset({"read", "assign", "answer", "decline"})  # answering takes it first


def can_act_on_teleexpertise(user, request: TeleexpertiseRequest, verb: str) -> bool:
    """Coordinators of the CPTS: read, assign. The requester: read, close. The named or assigned expert:
    read, take, start, answer, decline. A specialist of the pool, while nobody has taken the request: read,
    take, answer (which takes it), decline. The patient's médecin traitant: read. Nobody else."""
    permission = TELEEXPERTISE_VERBS.get(verb)
    if permission is None or not has_permission(user, permission) or request.cpts_id != user.cpts_id:
        return False
    if _sees_whole_cpts(user) and has_permission(user, Permission.TELEEXPERTISE_ASSIGN):
        return verb in ("read", "assign")
    me = user.professional
    if me is None:
        return False
    if me.id == request.requester_id:
        return verb == "read" or (verb == "close" and has_permission(user, Permission.TELEEXPERTISE_REQUEST))
    if verb != "read" and not has_permission(user, Permission.TELEEXPERTISE_ANSWER):
        return False
    if me.id == request.expert_id:
        return verb in _EXPERT_VERBS
    if _in_untaken_pool(me, request):
        return verb in _POOL_VERBS
    return verb == "read" and request.patient.attending_gp_id == me.id


def _in_untaken_pool(me, request: TeleexpertiseRequest) -> bool:
    return (
        request.expert_id is None
        and request.state is TeleexpertiseState.SUBMITTED
        and request.specialty is not None
        and me.is_active
        and me.profession is Profession.SPECIALIST
        and (me.specialty or "").lower() == request.specialty.lower()
    )


def visible_teleexpertise(user) -> ColumnElement[bool]:
    """The WHERE clause of the requests a user may list: the CPTS's for the coordination; for a
    professional, those they asked, those named or assigned to them, their pool's untaken ones, and
    those about the patients whose médecin traitant they are."""
    if not has_permission(user, Permission.TELEEXPERTISE_READ):
        return false()
    request = TeleexpertiseRequest
    in_cpts = request.cpts_id == user.cpts_id
    if _sees_whole_cpts(user):
        return in_cpts
    me = user.professional
    if me is None:
        return false()
    attended = select(Patient.id).where(Patient.attending_gp_id == me.id)
    mine = (request.requester_id == me.id) | (request.expert_id == me.id) | request.patient_id.in_(attended)
    if me.profession is Profession.SPECIALIST and me.specialty:
        mine = mine | (
            request.expert_id.is_(None)
            & (request.state == TeleexpertiseState.SUBMITTED)
            & (func.lower(request.specialty) == me.specialty.lower())
        )
    return in_cpts & mine


def teleexpertise_for(session: Session, user, request_id: int, verb: str) -> TeleexpertiseRequest:
    row = session.get(TeleexpertiseRequest, request_id)
    allowed = row is not None and can_act_on_teleexpertise(user, row, verb)
    table = "teleexpertise_requests"
    return _found(session, user, row, allowed, verb, kind="teleexpertise", table=table, row_id=request_id)


# What each verb on a report needs from the role; the relation to the report comes on top.
REPORT_VERBS = {
    "read": Permission.REPORTS_READ,
    "update": Permission.REPORTS_WRITE,
    "sign": Permission.REPORTS_WRITE,
    "supersede": Permission.REPORTS_WRITE,
}


def can_act_on_report(session: Session, user, report: Report, verb: str) -> bool:
    """Read a signed report: whoever may see the patient's record (coordinators of the CPTS, professionals in
    the patient's care), the author always. Read a draft, write, sign, correct: the author only (the workflow
    checks it again)."""
    permission = REPORT_VERBS.get(verb)
    if permission is None or not has_permission(user, permission) or report.cpts_id != user.cpts_id:
        return False
    author = user.professional_id is not None and user.professional_id == report.author_id
    if verb != "read" or report.state is ReportState.DRAFT:
        return author  # a draft is its author's until signed
    return author or can_view_patient(session, user, report.patient)


def report_for(session: Session, user, report_id: int, verb: str, *, load: Sequence = (), lock: bool = False) -> Report:
    """`load` and `lock`: as appointment_for's; every verb but reading is the author's alone, which the locking
    SELECT checks too."""
    row = _get(session, user, Report, report_id, load, lock, None if verb == "read" else "author_id")
    allowed = row is not None and can_act_on_report(session, user, row, verb)
    return _found(session, user, row, allowed, verb, kind="report", table="reports", row_id=report_id)


def visible_appointments(user) -> ColumnElement[bool]:
    """The WHERE clause of the appointments a user may list: the CPTS's for the coordination; for a professional,
    the sessions they perform or accompany (an IDEL only offered a visit reads it by id, not in a list)."""
    if not has_permission(user, Permission.APPOINTMENTS_READ):
        return false()
    in_cpts = Appointment.cpts_id == user.cpts_id
    if _sees_whole_cpts(user):
        return in_cpts
    if user.professional_id is None:
        return false()
    return in_cpts & (
        (Appointment.performer_id == user.professional_id) | (Appointment.accompanying_id == user.professional_id)
    )
