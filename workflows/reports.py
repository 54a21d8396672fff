"""The compte-rendu of a remote act: written by the performer of the appointment (or by the expert answering
a téléexpertise), signed, which freezes it, and routed to the patient, the médecin traitant, the referring
GP and, if chosen, the other participants, each within the delay set by the program.

`draft → signed → sent → acknowledged`. A signed report never changes: a correction is a new version, a
draft that supersedes it and is signed and routed in turn. All the messages of a report and its versions
share one outbox group: the dispatcher has at most one of them in flight, and delivers a correction after
the original (R7). The price: a recipient whose server keeps failing holds back the report's other
recipients until its message is sent or dead (a few hours at most with the capped backoff).
"""

import datetime as dt
import functools
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    Insert,
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    exists,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased, joinedload, make_transient_to_detached, selectinload, sessionmaker

from connectors import outbox
from hub import audit, row_locks
from hub.db import (
    NEW_ID,
    UTCDateTime,
    around_new_id,
    driver_execute,
    driver_rows,
    insert_together,
    inserts_around_id,
    session_scope,
    update_row,
    utcnow,
    with_defaults,
    with_new_id,
)
from hub.documents import store
from hub.documents.clinical import ClinicalDocument, DocumentPackage, Section, new_document_uid
from hub.documents.freezing import freeze
from hub.documents.identity import custodian, custodian_of, patient_identity, professional_identity
from hub.errors import Conflict, DocumentPending, RuleViolation, ValidationFailed, describe_failure, failure_kind
from hub.models import (
    MIN_REPORT_DELAY_HOURS,
    RECIPIENT_ROLE_LABELS,
    REPORT_DELAY_DEFAULTS,
    REPORT_KIND_LABELS,
    REPORT_STATE_LABELS,
    Actor,
    Appointment,
    AppointmentKind,
    AppointmentState,
    CarePathway,
    CarePathwayState,
    CarePathwayStep,
    Delivery,
    DeliveryState,
    Modality,
    Organisation,
    OutboxMessage,
    Patient,
    Professional,
    RecipientRole,
    Referral,
    Report,
    ReportKind,
    ReportState,
    SessionProgram,
    StepState,
    TeleexpertiseRequest,
    TeleexpertiseState,
    User,
    awaiting_rendering,
)
from hub.services import directory
from scheduling.agenda import day_bounds
from workflows import deliveries, events, rituals, teleexpertise
from workflows.attachments import StoredFile
from workflows.fees import local_day
from workflows.machine import Machine

S = ReportState
MACHINE = Machine(
    "le compte rendu",
    {
        "update": (frozenset({S.DRAFT}), S.DRAFT),
        "sign": (frozenset({S.DRAFT}), S.SIGNED),
        "supersede": (frozenset({S.SIGNED, S.SENT, S.ACKNOWLEDGED}), S.DRAFT),
    },
    REPORT_STATE_LABELS,
)
REPORTABLE_KINDS = {
    AppointmentKind.ASSISTED_TELECONSULTATION: ReportKind.TELECONSULTATION,
    AppointmentKind.TELESOIN: ReportKind.TELESOIN,
}
# Written during or after the session; signed once the act is over (done, or fell back to the phone).
WRITABLE = (AppointmentState.CHECKED_IN, AppointmentState.DONE, AppointmentState.DEGRADED)
SIGNABLE = (AppointmentState.DONE, AppointmentState.DEGRADED)
PLANNED = (AppointmentState.PROPOSED, AppointmentState.CONFIRMED, AppointmentState.CHECKED_IN)
OPEN_REQUEST_STATES = (TeleexpertiseState.ASSIGNED, TeleexpertiseState.IN_PROGRESS)
FIELDS = ("acts", "prescriptions", "technical_incidents", "conclusion", "follow_up", "follow_up_modality")
FIELD_LABELS = {
    "acts": "Actes réalisés",
    "prescriptions": "Prescriptions",
    "technical_incidents": "Incidents techniques",
    "conclusion": "Conclusion",
    "follow_up": "Suivi demandé",
    "follow_up_modality": "Modalité du suivi demandé",
}
REQUIRED_TO_SIGN = ("acts", "conclusion")
MAX_TEXT = 20_000
ALERT_KIND = "report_overdue"
log = logging.getLogger(__name__)


# --- writing -----------------------------------------------------------------------------------------------


def start_report(session: Session, actor: User, appointment: Appointment) -> Report:
    """The performer's draft for a session, prefilled with the act's time and its participants; the draft
    already begun is returned instead of a second one."""
    return begin_report(session, actor, appointment)[0]


# The session's current report, if begun. Built once (issue 17, P7: each draft asks).
_BEGUN = (
    select(Report)
    .where(Report.appointment_id == bindparam("appointment_id"), Report.superseded_at.is_(None))
    .order_by(Report.version.desc())
    .limit(1)
)


def begin_report(session: Session, actor: Actor, appointment: Appointment) -> tuple[Report, bool]:
    """start_report's draft, and whether it was created now (the API answers 201) rather than already begun."""
    # The author first: whoever else may read the session is refused without taking its lock (its performer
    # never changes).
    author_id = _author(actor, appointment.performer_id)
    _lock(session, appointment)
    kind = REPORTABLE_KINDS.get(appointment.kind)
    if kind is None:
        raise RuleViolation("Un compte rendu n'est rédigé ici que pour une téléconsultation ou un télésoin.")
    if appointment.state not in WRITABLE:
        raise RuleViolation("Le compte rendu se rédige une fois le patient accueilli.")
    existing = session.scalar(_BEGUN, {"appointment_id": appointment.id})
    if existing is not None:
        return existing, False
    participants = [appointment.performer_id] + ([appointment.accompanying_id] if appointment.accompanying_id else [])
    report = Report(
        cpts_id=appointment.cpts_id,
        kind=kind,
        patient_id=appointment.patient_id,
        author_id=author_id,
        appointment_id=appointment.id,
        performed_at=appointment.starts_at,
        participant_ids=json.dumps(participants),
        created_by_user_id=actor.id,
    )
    return _add(session, actor, report), True


def begin_answer(session: Session, actor: User, request: TeleexpertiseRequest, *, zone: str) -> Report:
    """« Répondre »: the expert takes the request (workflows.teleexpertise.take_to_answer) and gets the draft
    answer, begun once."""
    teleexpertise.take_to_answer(session, actor, request, zone=zone)
    if request.answer_report_id is not None:
        return session.get_one(Report, request.answer_report_id)
    return _start_answer(session, actor, request)


def answer_request(
    session: Session,
    actor: User,
    request: TeleexpertiseRequest,
    *,
    conclusion: str | None,
    recommendations: str | None,
    and_sign: bool,
    upload_dir: Path,
    zone: str,
) -> Report:
    """Write the draft answer (conclusion, recommendations) and, if asked, sign and send it."""
    draft = begin_answer(session, actor, request, zone=zone)
    update_draft(
        session,
        actor,
        draft,
        acts=draft.acts or teleexpertise.ANSWER_ACTS,
        conclusion=conclusion,
        follow_up=recommendations,
    )
    if and_sign:
        sign(session, actor, draft, upload_dir=upload_dir, zone=zone)
    return draft


def _start_answer(session: Session, actor: User, request: TeleexpertiseRequest) -> Report:
    """The expert's draft answer to a téléexpertise request (a report of type 85208-7)."""
    author_id = _author(actor, request.expert_id)
    if request.state not in (TeleexpertiseState.ASSIGNED, TeleexpertiseState.IN_PROGRESS):
        raise RuleViolation("La demande doit vous être attribuée avant d'y répondre.")
    if request.answer_report_id is not None:
        answer = session.get(Report, request.answer_report_id)
        if answer is not None and answer.state is S.DRAFT:
            return answer
        raise RuleViolation("Cette demande a déjà une réponse signée.")
    report = Report(
        cpts_id=request.cpts_id,
        kind=ReportKind.TELEEXPERTISE,
        patient_id=request.patient_id,
        author_id=author_id,
        performed_at=utcnow(),
        participant_ids=json.dumps([request.requester_id, author_id]),
        created_by_user_id=actor.id,
    )
    _add(session, actor, report)
    request.answer_report_id = report.id
    return report


def _add(session: Session, actor: Actor, report: Report) -> Report:
    """The transient `report` inserted and made persistent, a first version its own root, with its audit row."""
    if audit.can_take_queued(session):
        # The row queued before the report has its id, and inserted by the report's own statement around that id.
        target = (_REPORTS.name, NEW_ID)
        audit.record(session, actor=actor, action="report.create", target=target, cpts_id=report.cpts_id)
        _insert(session, report, inserting=audit.take_queued(session))
    else:
        _insert(session, report)
        audit.record(session, actor=actor, action="report.create", target=report, cpts_id=report.cpts_id)
    return report


_REPORTS = cast(Table, Report.__table__)
_REPORT_COLUMNS = tuple(prop.key for prop in inspect(Report).column_attrs)


def _insert(session: Session, report: Report, *, inserting: Sequence[tuple[Table, dict]] = ()) -> None:
    """One Core INSERT of the report's row, rather than the unit of work's flush and an UPDATE of its root (issue
    17, P7: they cost a draft more CPU than its other statements); the instance then holds every column as inserted
    and the identity of a row just loaded (as workflows.appointments._insert_holding's appointment). `inserting`:
    rows inserted with it, NEW_ID and IdTexts in them given the report's id; by the same statement on PostgreSQL,
    elsewhere one INSERT each after it."""
    given = {key: getattr(report, key) for key in _REPORT_COLUMNS if key in report.__dict__ and key != "id"}
    row = with_defaults(_REPORTS, given) | {"root_id": given.get("root_id")}
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        shapes, parameters = around_new_id(inserting)
        # By the driver, compiled once: SQLAlchemy does not cache the compilation of an INSERT of several VALUES.
        statement = _insert_own_root(tuple(row), shapes)
        (new_id,) = driver_execute(connection, statement, [row | parameters], fetch=True)[0]
    else:
        # No sequence to draw the id from before the INSERT: a first version's root is written by a second statement.
        new_id = connection.execute(_insert_returning_id(tuple(row)), row).scalar_one()
        if row["root_id"] is None:
            connection.execute(_SET_OWN_ROOT, {"row_id": new_id, "inserted_at": row["updated_at"]})
        if inserting:
            insert_together(session, with_new_id(inserting, new_id))
    inserted = dict.fromkeys(_REPORT_COLUMNS) | row | {"id": new_id, "root_id": row["root_id"] or new_id}
    for key in _REPORT_COLUMNS:
        setattr(report, key, inserted[key])
    make_transient_to_detached(report)  # no change left to flush: as loaded
    session.add(report)


@functools.cache
def _insert_returning_id(names: tuple[str, ...]) -> Insert:
    return (
        insert(Report)
        .values({name: bindparam(name, type_=_REPORTS.c[name].type) for name in names})
        .returning(Report.id)
    )


@functools.cache
def _insert_own_root(names: tuple[str, ...], inserting: tuple = ()) -> Insert:
    # The id drawn from the table's sequence in a CTE, evaluated once (a volatile function's): a first version
    # (root_id null) is its own root in the same INSERT, and the rows inserted with it (around_new_id's shapes,
    # data-modifying CTEs selected from that CTE) hold it.
    new_id = select(func.nextval(func.pg_get_serial_sequence(_REPORTS.name, "id")).label("id")).cte("new_id")
    drawn = select(new_id.c.id).scalar_subquery()
    values: dict[str, Any] = {name: bindparam(name, type_=_REPORTS.c[name].type) for name in names}
    values |= {"id": drawn, "root_id": func.coalesce(values["root_id"], drawn)}
    rows = [rows.cte(f"rows_{i}") for i, rows in enumerate(inserts_around_id(drawn, inserting))]
    return insert(Report).values(values).returning(Report.id).add_cte(*rows)


# Part of the insertion: updated_at stays as inserted (the column's onupdate would stamp it again).
_SET_OWN_ROOT = (
    update(Report)
    .where(Report.id == bindparam("row_id"))
    .values(root_id=bindparam("row_id"), updated_at=bindparam("inserted_at"))
)


def update_draft(session: Session, actor: Actor, report: Report, **fields) -> Report:
    _lock(session, report)
    MACHINE.target("update", report.state)
    _author(actor, report.author_id)
    errors = {}
    written: dict[str, object] = {}
    for name, value in fields.items():
        if name == "copy_participants":
            written[name] = bool(value)
            continue
        if name not in FIELDS:
            raise ValueError(f"unknown report field {name}")
        value = (value or "").strip() or None
        if value and len(value) > MAX_TEXT:
            errors[name] = f"{FIELD_LABELS[name]} : texte trop long ({MAX_TEXT} caractères au plus)."
        elif name == "follow_up_modality" and value and value not in Modality.__members__.values():
            errors[name] = f"{FIELD_LABELS[name]} : modalité inconnue."
        elif name in ("acts", "conclusion"):
            written[name] = value or ""
        else:
            written[name] = value
    if errors:
        raise ValidationFailed(errors)
    # As the unit of work would: no UPDATE (nor a new updated_at) for a draft saved again unchanged.
    audit.record(session, actor=actor, action="report.update", target=report, cpts_id=report.cpts_id)
    if changed := {name: value for name, value in written.items() if getattr(report, name) != value}:
        # The audit row queued above inserted by the UPDATE's own statement (audit.take_queued).
        update_row(session, report, changed, inserting=audit.take_queued(session))
    return report


# --- signing and routing -----------------------------------------------------------------------------------


# The patient, their médecin traitant (a recipient) and the author go into the frozen content: read with the
# locked row, not one lazy load at a time.
SIGN_LOAD = (joinedload(Report.patient).joinedload(Patient.attending_gp), joinedload(Report.author))


def sign(
    session: Session, actor: Actor, report: Report, *, upload_dir: Path, zone: str, now: dt.datetime | None = None
) -> Report:
    """Freeze the report: its clinical document (text, version, author, times in the territory's `zone`) and its
    recipients, as JSON under their hash, in this transaction with the state, the signer and the time. The PDF
    and the CDA are rendered from that by the worker (render_pending), which then queues the deliveries: signing
    answers without the rendering's cost, and no delivery leaves without its document (R1)."""
    now = now or utcnow()
    _lock(session, report, *SIGN_LOAD)
    MACHINE.target("sign", report.state)
    _author(actor, report.author_id)
    if missing := missing_to_sign(report):
        raise ValidationFailed(missing, incomplete(missing))
    found = _signing(session, report)
    appointment, program = found.appointment, found.program
    if appointment is not None and appointment.state not in SIGNABLE:
        raise RuleViolation("Le compte rendu se signe une fois la séance terminée.")
    request = _answered_request(session, report)
    previous = session.get(Report, report.supersedes_id) if report.supersedes_id else None
    # Written with the other columns in one UPDATE below, after the reads of the document and its recipients.
    document_uid = new_document_uid()
    participants = _participants(session, report, found.accompanying)  # the document's and, if copied, recipients
    document = _document(session, report, document_uid, previous, now, participants=participants, cpts=found.cpts)
    targets = _targets(session, report, appointment, program, now, found.prescribers, participants)
    frozen = json.dumps(DocumentPackage(document).to_payload() | {"recipients": targets}, sort_keys=True)
    signed = {
        "document_uid": document_uid,
        "frozen_content": frozen,
        "content_sha256": hashlib.sha256(frozen.encode()).hexdigest(),
        "state": S.SIGNED,
        "signed_at": now,
        "signed_by_user_id": actor.id,
    }
    if not targets:
        signed |= {"state": S.SENT, "sent_at": now}  # nobody to send to: the hub is where it is read
    # Queued before the write, which inserts it with its own statement (audit.take_queued).
    audit.record(
        session,
        actor=actor,
        action="report.sign",
        target=report,
        cpts_id=report.cpts_id,
        details={"version": report.version, "deliveries": len(targets), "content_sha256": signed["content_sha256"]},
    )
    update_row(session, report, signed, inserting=audit.take_queued(session))
    if previous is not None:
        previous.superseded_at = now
    events.emit(
        session,
        cpts_id=report.cpts_id,
        event="report.signed",
        key=str(report.id),
        data={"report_id": report.id, "version": report.version, "appointment_id": report.appointment_id},
        now=now,
        settings=found.webhook,
    )
    if report.follow_up_modality:
        _ask_follow_up(session, actor, report, report.follow_up_modality, now, zone)
    if request is not None and report.supersedes_id is None:
        teleexpertise.mark_answered(session, request, report, now=now, zone=zone)
    return report


# A worker dead while rendering holds its reports this long; rendering one takes well under a second.
RENDER_LEASE = dt.timedelta(minutes=2)
RENDER_BATCH = 20
# One pass of the loop at most this long: well within the lease of the batch it last claimed.
RENDER_PASS = dt.timedelta(seconds=60)
# Signed this long ago and still not rendered (several leases: the worker down, or each try failing), a report is
# « en retard » for the coordination, as it is at once after a failed rendering.
RENDER_LATE = dt.timedelta(minutes=10)


def render_pending(
    session_factory: sessionmaker[Session],
    *,
    upload_dir: Path,
    zone: str,
    now: dt.datetime | None = None,
    lease: dt.timedelta = RENDER_LEASE,
    limit: int = RENDER_BATCH,
) -> str:
    """The worker's loop: render the signed reports' PDF and CDA from their frozen content and queue their
    deliveries, `limit` at a time until none is left (or RENDER_PASS has gone: the loop's next run goes on).
    Each report is claimed for `lease` first (a second worker leaves it alone), rendered outside any
    transaction, then finished under its row lock only if nobody finished it meanwhile: its documents and
    deliveries are written once. A worker that dies mid-way leaves the report to the next pass once the lease is
    over; the files already stored are content-addressed, written again identical."""
    rendered = failed = 0
    ends = time.monotonic() + RENDER_PASS.total_seconds()
    while True:
        claimed = _claim_rendering(session_factory, now or utcnow(), lease, limit)
        before = rendered
        for report_id, frozen in claimed:
            try:
                content = json.loads(frozen)
                package = render_frozen(content, upload_dir, zone=zone)
                with session_scope(session_factory) as session:
                    rendered += finish_rendering(session, report_id, package, frozen=content)
            except Exception as exc:  # the next pass after the lease retries it (a transient failure heals)
                failed += 1
                _record_failure(session_factory, report_id, exc, now or utcnow())
        # A full batch: more may wait (a peak of signatures), at a few a second each batch takes seconds. A batch
        # that rendered an original may have freed its correction, which waited for it (R7): one more look.
        if (len(claimed) < limit and rendered == before) or time.monotonic() > ends:
            return f"{rendered} compte(s) rendu(s) mis en forme, {failed} échec(s)"


def _record_failure(session_factory: sessionmaker[Session], report_id: int, exc: Exception, now: dt.datetime) -> None:
    """Log the failure and keep its time and kind on the report (its lease kept: retried once it is over), so that
    the coordinator's « en retard » list shows it at once and its author's page says it failed."""
    kind = failure_kind(exc)
    log.error("render_pending: report %s failed\n%s", report_id, describe_failure(exc))
    try:
        with session_scope(session_factory) as session:
            session.execute(
                update(Report)
                .where(Report.id == report_id, awaiting_rendering())
                .values(render_failed_at=now, render_error=" ; ".join(kind.splitlines())[:300])
            )
    except Exception as again:  # the database itself fails: the log line above is all there is until it is back
        log.error("render_pending: report %s: failure not recorded\n%s", report_id, describe_failure(again))


def _claim_rendering(
    session_factory: sessionmaker[Session], now: dt.datetime, lease: dt.timedelta, limit: int
) -> list[tuple[int, str]]:
    """The reports this worker renders, oldest first (a correction goes after its original, R7), each with its
    frozen content: two statements for the batch, the candidates then one conditional UPDATE of them all."""
    with session_scope(session_factory) as session:
        candidates = session.scalars(select(Report.id).where(*_claimable(now)).order_by(Report.id).limit(limit)).all()
        if not candidates:
            return []
        taken = session.execute(
            _claim(now, lease)
            .where(Report.id.in_(candidates))
            .returning(Report.id, Report.frozen_content)
            .execution_options(synchronize_session=False)  # a session of its own, holding no report
        ).all()
        return sorted((report_id, frozen) for report_id, frozen in taken)


def _claim(now: dt.datetime, lease: dt.timedelta):
    """A conditional update: of two workers that both saw a report free, one alone gets it (the other's update
    finds it held); a worker dead mid-way loses it once its lease is over. Each claim counts as an attempt."""
    taken = update(Report).where(*_claimable(now))
    return taken.values(render_lease_until=now + lease, render_attempts=Report.render_attempts + 1)


# Made once, as _NEWER below: an alias made per call costs more than its statement.
_OLDER = aliased(Report, name="older_version")


def _claimable(now: dt.datetime) -> tuple:
    """Awaiting rendering, its lease free, and no earlier version of it still awaiting: a correction's deliveries
    are queued after its original's, even when the original's rendering failed and waits for its lease (R7)."""
    free = or_(Report.render_lease_until.is_(None), Report.render_lease_until < now)
    return awaiting_rendering(), free, ~exists().where(*_earlier_waiting())


def _earlier_waiting() -> tuple:
    """An earlier version (_OLDER) of the report signed and still to render: the report waits for it (R7)."""
    older = _OLDER
    return (
        older.root_id == Report.root_id,
        older.version < Report.version,
        older.content_sha256.is_not(None),
        older.pdf_sha256.is_(None),
    )


def rendering_wait(session: Session, report: Report) -> Report | None:
    """The earlier version a signed correction waits for before it is rendered (_claimable: R7), None when it does
    not wait: its page, the API and its PDF say so, rather than « quelques secondes » for as long as that version's
    rendering fails."""
    if not report.document_pending or report.root_id in (None, report.id):
        return None
    earlier = (
        select(Report)
        .where(Report.root_id == report.root_id, Report.version < report.version, awaiting_rendering())
        .order_by(Report.version)
        .limit(1)
    )
    return session.scalar(earlier)


def render_frozen(frozen: dict, upload_dir: Path, *, zone: str) -> DocumentPackage:
    """The PDF and the CDA of the document frozen at signing, stored: the same bytes whenever it runs."""
    return freeze(DocumentPackage.from_payload(frozen).document, upload_dir, zone=zone)


def finish_rendering(session: Session, report_id: int, package: DocumentPackage, *, frozen: dict | None = None) -> bool:
    """Record the rendered documents and queue the frozen recipients' deliveries, under the report's lock; False
    (nothing written) when another worker has finished it already. `frozen`: the frozen content, when the caller
    has read it (it never changes once signed)."""
    cda, pdf = package.rendering("cda"), package.rendering("pdf")
    rendered = {"report_id": report_id, "cda_sha256": cda.sha256, "cda_size": cda.size}
    finished = session.execute(_FINISH, rendered | {"pdf_sha256": pdf.sha256, "pdf_size": pdf.size}).one_or_none()
    if finished is None:
        return False
    if frozen is None:
        frozen = json.loads(session.scalar(select(Report.frozen_content).where(Report.id == report_id)) or "{}")
    _route(session, report_id, finished.cpts_id, finished.root_id, package, frozen["recipients"])
    return True


# One conditional UPDATE takes the lock and writes, where a locked read then the ORM's flush took two statements (a
# second worker's UPDATE waits for the lock, then finds the report rendered and changes nothing). Built once, and
# leaving the session's identity map alone: the worker's session holds no report (a caller that does refreshes it).
_FINISH = (
    update(Report)
    .where(Report.id == bindparam("report_id"), awaiting_rendering())
    .values(
        cda_sha256=bindparam("cda_sha256"),
        cda_size=bindparam("cda_size"),
        pdf_sha256=bindparam("pdf_sha256"),
        pdf_size=bindparam("pdf_size"),
        render_lease_until=None,
    )
    .returning(Report.cpts_id, Report.root_id)
    .execution_options(synchronize_session=False)
)


def missing_to_sign(report: Report) -> dict[str, str]:
    """The fields a signature needs and the draft lacks, each error naming its field."""
    return {
        name: f"{FIELD_LABELS[name]} : à remplir pour signer." for name in REQUIRED_TO_SIGN if not getattr(report, name)
    }


def incomplete(missing: dict[str, str]) -> str:
    names = " et ".join(f"« {FIELD_LABELS[name]} »" for name in missing if name in FIELD_LABELS)
    return f"Le compte rendu est incomplet : {names} à remplir." if names else "Le compte rendu est incomplet."


def _answered_request(session: Session, report: Report) -> TeleexpertiseRequest | None:
    """The request a téléexpertise answer answers, checked before signing: still attached to it (an expert
    who handed the request back has lost it), still theirs, and open — or, for a correction, answered."""
    if report.kind is not ReportKind.TELEEXPERTISE:
        return None
    request = session.scalar(select(TeleexpertiseRequest).where(TeleexpertiseRequest.answer_report_id == report.id))
    if request is None:
        raise RuleViolation("Cette réponse n'est plus rattachée à une demande de téléexpertise : elle ne part pas.")
    if report.supersedes_id is None:
        if request.expert_id != report.author_id or request.state not in OPEN_REQUEST_STATES:
            raise RuleViolation("La demande n'est plus à vous ou n'attend plus de réponse.")
    elif request.state not in (TeleexpertiseState.ANSWERED, TeleexpertiseState.CLOSED):
        raise RuleViolation("Seule une réponse déjà envoyée se corrige.")
    return request


@dataclass(frozen=True)
class Recipient:
    role: RecipientRole
    address: str
    channel: str
    professional: Professional | None = None


def recipients(
    session: Session,
    report: Report,
    appointment: Appointment | None,
    prescribers: list[Professional] | None = None,
    participants: list[Professional] | None = None,
) -> list[Recipient]:
    """Who receives the report, each address once, in the order of the roles: patient, médecin traitant,
    prescriber, participants (if chosen), DMP. A professional without a secure mailbox reads it in the hub.
    `prescribers`, `participants`: as _prescribers and _participants give them, when the caller has read them."""
    patient = report.patient
    found: list[Recipient] = []

    def professional(role: RecipientRole, pro: Professional | None) -> None:
        if pro is not None and pro.id != report.author_id and pro.mssante_address:
            found.append(Recipient(role, pro.mssante_address, "mssante", pro))

    if (mailbox := deliveries.patient_mailbox(patient)) is not None:
        found.append(Recipient(RecipientRole.PATIENT, mailbox, "mssante"))
    professional(RecipientRole.ATTENDING_GP, patient.attending_gp)
    if prescribers is None:
        prescribers = _prescribers(session, report, appointment)
    for prescriber in prescribers:
        professional(RecipientRole.PRESCRIBER, prescriber)
    if report.copy_participants:
        for pro in _participants(session, report) if participants is None else participants:
            professional(RecipientRole.PARTICIPANT, pro)
    if deliveries.may_deposit_in_dmp(patient):
        found.append(Recipient(RecipientRole.DMP, deliveries.DMP_ADDRESS, "dmp"))
    seen: set[tuple[str, str]] = set()
    unique = []
    for recipient in found:
        key = (recipient.channel, recipient.address.lower())
        if key not in seen:
            seen.add(key)
            unique.append(recipient)
    return unique


def delivery_due_at(session_end: dt.datetime, program: SessionProgram | None, role: RecipientRole) -> dt.datetime:
    """When a report must have reached a recipient of `role`: the end of the session plus the program's delay
    for that role (REPORT_DELAY_DEFAULTS without a program). The one meaning of "within its delay": routing
    gives each delivery this due time, and the "en retard" list and the coordinators' alert compare to it."""
    hours = program.report_delay_hours(role.value) if program is not None else REPORT_DELAY_DEFAULTS[role.value]
    return session_end + dt.timedelta(hours=hours)


def signature_due_at(session_end: dt.datetime, program: SessionProgram | None) -> dt.datetime:
    """The report must be signed before its first recipient is due."""
    return min(delivery_due_at(session_end, program, role) for role in RecipientRole)


@dataclass(frozen=True)
class _Signing:
    """What a signature reads beside its locked report, held here (the session's identity map keeps no row that
    nobody holds). Left to be read later without a session (a téléexpertise answer): the prescribers (its
    requester), the custodian, the participants and the CPTS's webhook settings."""

    appointment: Appointment | None = None
    program: SessionProgram | None = None
    cpts: Organisation | None = None
    prescribers: list[Professional] | None = None
    accompanying: Professional | None = None
    webhook: str | events.Unread | None = events.UNREAD


_ACCOMPANYING = aliased(Professional, name="accompanying")
# Built once: its construction (five entities, four joins) costs more Python than its execution's lookup in
# the compiled-statement cache.
_SIGNING = (
    select(
        Appointment,
        SessionProgram,
        Organisation,
        Professional,
        _ACCOMPANYING,
        events.subscriber_settings(bindparam("cpts_id")),
    )
    .outerjoin(SessionProgram, SessionProgram.id == Appointment.program_id)
    .outerjoin(Organisation, Organisation.id == bindparam("cpts_id"))
    .outerjoin(Referral, Referral.appointment_id == Appointment.id)
    .outerjoin(Professional, Professional.id == Referral.author_id)
    .outerjoin(_ACCOMPANYING, _ACCOMPANYING.id == Appointment.accompanying_id)
    .where(Appointment.id == bindparam("appointment_id"))
    .order_by(Referral.id)
)


def _signing(session: Session, report: Report) -> _Signing:
    """The report's session, its program (the recipients' delays), the CPTS (the document's custodian), the
    authors of its referrals (the prescribers), its accompanying professional (a participant) and the CPTS's
    webhook settings (events.emit): one SELECT, a row per referral."""
    if report.appointment_id is None:
        return _Signing()
    rows = session.execute(_SIGNING, {"appointment_id": report.appointment_id, "cpts_id": report.cpts_id}).all()
    if not rows:
        return _Signing()
    appointment, program, cpts, _prescriber, accompanying, webhook = rows[0]
    prescribers = [row[3] for row in rows if row[3] is not None]
    return _Signing(appointment, program, cpts, prescribers, accompanying, webhook)


def _program_of(session: Session, appointment: Appointment | None) -> SessionProgram | None:
    return session.get(SessionProgram, appointment.program_id) if appointment and appointment.program_id else None


def _targets(
    session: Session,
    report: Report,
    appointment: Appointment | None,
    program: SessionProgram | None,
    now: dt.datetime,
    prescribers: list[Professional] | None,
    participants: list[Professional],
) -> list[dict]:
    """The recipients as the signature fixes them, each with its due time, for the worker to route."""
    # From the session's end, whenever the report is signed: a report signed late is late, never due "now".
    base = appointment.ends_at if appointment is not None else now
    return [
        {
            "role": recipient.role.value,
            "address": recipient.address,
            "channel": recipient.channel,
            "professional_id": recipient.professional.id if recipient.professional is not None else None,
            "due_at": delivery_due_at(base, program, recipient.role).isoformat(),
        }
        for recipient in recipients(session, report, appointment, prescribers, participants)
    ]


def _route(
    session: Session, report_id: int, cpts_id: int, root_id: int, package: DocumentPackage, targets: list[dict]
) -> int:
    """The frozen recipients' deliveries and their messages, two INSERTs for them all."""
    return deliveries.queue_deliveries(
        session,
        package=package,
        cpts_id=cpts_id,
        targets=[
            deliveries.Target(
                role=RecipientRole(target["role"]),
                address=target["address"],
                channel=target["channel"],
                due_at=dt.datetime.fromisoformat(target["due_at"]),
                # Frozen at signing from a professional row (never deleted: the key refers to it).
                professional_id=target["professional_id"],
            )
            for target in targets
        ],
        report_id=report_id,
        # Every message of a report, all versions and recipients, leaves one at a time, in order (R7).
        group_key=f"report:{root_id}",
    )


@dataclass(frozen=True)
class RecipientLine:
    """One recipient of a report as its author and readers see it: who, by which channel, due when, and where
    the sending stands (`delivery` is None before the signature)."""

    role: RecipientRole
    name: str
    address: str
    channel: str
    due_at: dt.datetime
    delivery: Delivery | None

    @property
    def sent_at(self) -> dt.datetime | None:
        return self.delivery.sent_at if self.delivery is not None else None


def recipient_lines(session: Session, report: Report, *, now: dt.datetime | None = None) -> list[RecipientLine]:
    """A draft's recipients as the signature would route them, each with its deadline from the session's end
    (from the signature for a téléexpertise answer, signed `now` at the earliest); a signed report's deliveries."""
    appointment = session.get(Appointment, report.appointment_id) if report.appointment_id else None
    if report.document_pending:  # signed, its deliveries queued once the worker has rendered the document
        return _frozen_lines(session, report)
    if report.state is not S.DRAFT:
        return [
            RecipientLine(
                d.recipient_role,
                _recipient_name(d.recipient_role, d.recipient_professional, report),
                d.address,
                d.channel,
                d.due_at,
                d,
            )
            for d in sorted(report.deliveries, key=lambda d: (d.due_at, d.id))
        ]
    program = _program_of(session, appointment)
    base = appointment.ends_at if appointment is not None else (now or utcnow())
    return [
        RecipientLine(
            r.role,
            _recipient_name(r.role, r.professional, report),
            r.address,
            r.channel,
            delivery_due_at(base, program, r.role),
            None,
        )
        for r in recipients(session, report, appointment)
    ]


def _frozen_lines(session: Session, report: Report) -> list[RecipientLine]:
    frozen = json.loads(session.scalar(select(Report.frozen_content).where(Report.id == report.id)) or "{}")
    targets = frozen.get("recipients", [])
    ids = [t["professional_id"] for t in targets if t["professional_id"]]
    professionals = {pro.id: pro for pro in session.scalars(select(Professional).where(Professional.id.in_(ids)))}
    lines = []
    for target in targets:
        role = RecipientRole(target["role"])
        name = _recipient_name(role, professionals.get(target["professional_id"]), report)
        due_at = dt.datetime.fromisoformat(target["due_at"])
        lines.append(RecipientLine(role, name, target["address"], target["channel"], due_at, None))
    return sorted(lines, key=lambda line: line.due_at)


def _recipient_name(role: RecipientRole, professional: Professional | None, report: Report) -> str:
    if professional is not None:
        return professional.full_name
    if role is RecipientRole.PATIENT:
        return report.patient.display_name
    return RECIPIENT_ROLE_LABELS[role]


def _prescribers(session: Session, report: Report, appointment: Appointment | None) -> list[Professional]:
    if report.kind is ReportKind.TELEEXPERTISE:
        request = session.scalar(select(TeleexpertiseRequest).where(TeleexpertiseRequest.answer_report_id == report.id))
        return [request.requester] if request is not None else []
    if appointment is None:
        return []
    return list(
        session.scalars(
            select(Professional)
            .join(Referral, Referral.author_id == Professional.id)
            .where(Referral.appointment_id == appointment.id)
            .order_by(Referral.id)
        )
    )


def _participants(session: Session, report: Report, known: Professional | None = None) -> list[Professional]:
    """The session's participants but the author, who is neither the document's participant nor its recipient,
    by id; `known`, one already read (the session's accompanying professional), is not read again."""
    ids = {i for i in json.loads(report.participant_ids or "[]") if isinstance(i, int) and i != report.author_id}
    found = [known] if known is not None and known.id in ids else []
    if missing := ids - {pro.id for pro in found}:
        found += session.scalars(select(Professional).where(Professional.id.in_(missing)))
    return sorted(found, key=lambda pro: pro.id)


def _document(
    session: Session,
    report: Report,
    document_uid: str,
    previous: Report | None,
    now: dt.datetime,
    participants: list[Professional] | None = None,
    cpts: Organisation | None = None,
) -> ClinicalDocument:
    """`participants` and `cpts` (the custodian): read here unless the caller has read them."""
    if participants is None:
        participants = _participants(session, report)
    appointment = session.get(Appointment, report.appointment_id) if report.appointment_id else None
    sections = [
        ("Actes réalisés", report.acts),
        # Seed 000: what goes to Mon espace santé tells the rituals and PROMs of a kiné's télésoin session.
        *(rituals.report_sections(appointment) if appointment is not None else []),
        ("Prescriptions", report.prescriptions),
        ("Incidents techniques", report.technical_incidents),
        ("Conclusion", report.conclusion),
        ("Suivi demandé", report.follow_up),
    ]
    return ClinicalDocument(
        document_uid=document_uid,
        loinc=report.loinc,
        title=REPORT_KIND_LABELS[report.kind],
        created_at=now,
        patient=patient_identity(report.patient),
        author=professional_identity(report.author, "Auteur"),
        custodian=custodian(cpts) if cpts is not None else custodian_of(session, report.cpts_id),
        service_started_at=appointment.starts_at if appointment else report.performed_at,
        service_ended_at=appointment.ends_at if appointment else None,
        participants=tuple(professional_identity(pro, "Participant") for pro in participants),
        sections=tuple(Section(title, text) for title, text in sections if text),
        version=report.version,
        replaces_uid=previous.document_uid if previous is not None else None,
        set_id=_first_version_uid(session, report),
    )


def _first_version_uid(session: Session, report: Report) -> str | None:
    if report.root_id in (None, report.id):
        return None
    return session.scalar(select(Report.document_uid).where(Report.id == report.root_id))


def _ask_follow_up(session: Session, actor: Actor, report: Report, follow_up: str, now: dt.datetime, zone: str) -> None:
    """The follow-up the report asks (an in-person echocardiography…) becomes the patient's next pathway
    step of that modality, due now, so that it reaches the coordinator's queue; a conditional step waiting
    for this request is the one taken."""
    pathway = session.scalar(
        select(CarePathway)
        .where(CarePathway.patient_id == report.patient_id, CarePathway.state == CarePathwayState.ACTIVE)
        .order_by(CarePathway.id.desc())
        .limit(1)
    )
    if pathway is None:
        return
    modality = Modality(follow_up)
    today = local_day(now, zone)  # the territory's day: 00:30 in Paris is already tomorrow's step
    step = next(
        (s for s in pathway.steps if s.state is StepState.PLANNED and s.modality is modality and s.condition),
        None,
    )
    if step is None:
        step = CarePathwayStep(
            pathway=pathway,
            position=max((s.position for s in pathway.steps), default=0) + 1,
            name=(report.follow_up or "Suivi demandé par le compte rendu")[:200],
            modality=modality,
            profession=report.author.profession.value,
            due_on=today,
        )
        session.add(step)
    else:
        step.due_on = min(step.due_on, today)
    step.condition = f"demandé par le compte rendu du {today.strftime('%d/%m/%Y')}"
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="pathway.step_requested",
        target=step,
        cpts_id=report.cpts_id,
        details={"report_id": report.id},
    )


# --- corrections and waivers -------------------------------------------------------------------------------


def signed_pdf(session: Session, actor: Actor, report: Report, *, upload_dir: Path) -> StoredFile:
    """The signed report's frozen PDF, for a reader the caller has checked; the export is audited."""
    if report.document_pending:
        lease = int(RENDER_LEASE.total_seconds())  # a failed rendering is retried once its lease is over
        earlier = rendering_wait(session, report)
        if earlier is not None:  # the failure that holds it up is the earlier version's, not its own
            retry = lease if earlier.document_failed else None
            raise DocumentPending(failed_retried_in=retry, waits_for_version=earlier.version)
        raise DocumentPending(failed_retried_in=lease if report.document_failed else None)
    if report.pdf_sha256 is None:
        raise Conflict("Le compte rendu n'est pas encore signé : son PDF n'existe pas.")
    audit.record(
        session,
        actor=actor,
        action="report.download",
        target=report,
        cpts_id=report.cpts_id,
        details={"version": report.version},
    )
    content = store.read_stored(upload_dir, report.pdf_sha256)
    return StoredFile(content, "application/pdf", f"compte-rendu-{report.id}-v{report.version}.pdf")


def supersede(session: Session, actor: Actor, report: Report) -> Report:
    """A correction: a new draft version holding the signed text, to edit and sign in turn."""
    _lock(session, report)
    MACHINE.target("supersede", report.state)
    _author(actor, report.author_id)
    if report.superseded_at is not None or session.scalar(select(Report.id).where(Report.supersedes_id == report.id)):
        raise RuleViolation("Une nouvelle version de ce compte rendu existe déjà.")
    correction = Report(
        cpts_id=report.cpts_id,
        kind=report.kind,
        patient_id=report.patient_id,
        author_id=report.author_id,
        appointment_id=report.appointment_id,
        root_id=report.root_id,
        version=report.version + 1,
        supersedes_id=report.id,
        performed_at=report.performed_at,
        participant_ids=report.participant_ids,
        copy_participants=report.copy_participants,
        created_by_user_id=actor.id,
        **{name: getattr(report, name) for name in FIELDS},
    )
    _add(session, actor, correction)
    if report.kind is ReportKind.TELEEXPERTISE:
        request = session.scalar(select(TeleexpertiseRequest).where(TeleexpertiseRequest.answer_report_id == report.id))
        if request is not None:
            request.answer_report_id = correction.id
    return correction


def waive_report(session: Session, actor: User, appointment: Appointment, *, reason: str) -> Appointment:
    """Serial télésoin sessions by the same professional may go without a report each (seed 002), never
    the last one: a later session of the same patient with the same performer must be planned."""
    _lock(session, appointment)
    _author(actor, appointment.performer_id)
    reason = (reason or "").strip()
    if appointment.kind is not AppointmentKind.TELESOIN:
        raise RuleViolation("Seules les séances de télésoin en série peuvent être dispensées de compte rendu.")
    if not reason:
        raise ValidationFailed({"reason": "Indiquez pourquoi cette séance n'a pas de compte rendu propre."})
    later = session.scalar(
        select(func.count(Appointment.id)).where(
            Appointment.patient_id == appointment.patient_id,
            Appointment.performer_id == appointment.performer_id,
            Appointment.kind == AppointmentKind.TELESOIN,
            Appointment.starts_at > appointment.starts_at,
            Appointment.state.in_(PLANNED),
        )
    )
    if not later:
        raise RuleViolation("La dernière séance d'une série de télésoin doit avoir son compte rendu.")
    if session.scalar(select(Report.id).where(Report.appointment_id == appointment.id, Report.state != S.DRAFT)):
        raise RuleViolation("Cette séance a déjà un compte rendu signé.")
    appointment.report_waived_reason = reason[:300]
    audit.record(session, actor=actor, action="report.waive", target=appointment, cpts_id=appointment.cpts_id)
    return appointment


# --- what is late ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueItem:
    # "unsigned": the session has no signed report; "unrendered": its document is not rendered (RENDER_LATE after
    # the signature, or after a failure); "unsent": a delivery has not left
    kind: str
    appointment_id: int | None
    report_id: int | None
    patient_id: int
    author: str
    since: dt.datetime  # when it was due
    detail: str


def awaiting_signature() -> list:
    """The sessions that still need a signed report: held, of a kind that has one, none signed in force, and not a
    waived session of a series that went on (the last of a series always needs its report)."""
    signed = exists().where(
        Report.appointment_id == Appointment.id, Report.state != S.DRAFT, Report.superseded_at.is_(None)
    )
    return [
        Appointment.kind.in_(list(REPORTABLE_KINDS)),
        Appointment.state.in_(SIGNABLE),
        or_(Appointment.report_waived_reason.is_(None), ~a_later_session_of_the_series()),
        ~signed,
    ]


def overdue(session: Session, cpts_id: int, *, now: dt.datetime | None = None, limit: int = 200) -> list[OverdueItem]:
    """The coordinator's "en retard" list: sessions done without a signed report past the shortest delay, signed
    reports whose document is not rendered RENDER_LATE after the signature or after a failed rendering (nothing
    leaves without it), and deliveries still waiting past their due time. Three queries whatever the data size."""
    now = now or utcnow()
    sessions_query, unrendered_query, deliveries_query = _overdue_statements(limit)
    # Candidates past the shortest delay a program may set; each is then held to its program's (signature_due_at).
    cutoff = now - dt.timedelta(hours=MIN_REPORT_DELAY_HOURS)
    sessions = session.execute(sessions_query, {"cpts_id": cpts_id, "cutoff": cutoff}).all()
    items = []
    for row in sessions:
        due = signature_due_at(row.ends_at, row.SessionProgram)
        if due < now:
            items.append(
                OverdueItem(
                    "unsigned", row.id, None, row.patient_id, row.Professional.full_name, due, "Compte rendu non signé"
                )
            )
    unrendered = session.execute(unrendered_query, {"cpts_id": cpts_id, "signed_before": now - RENDER_LATE}).all()
    items += [_unrendered(row) for row in unrendered]
    late = session.execute(deliveries_query, {"cpts_id": cpts_id, "now": now}).all()
    items += [
        OverdueItem(
            "unsent",
            row.appointment_id,
            row.Delivery.report_id,
            row.patient_id,
            row.Professional.full_name,
            row.Delivery.due_at,
            f"Envoi en attente : {RECIPIENT_ROLE_LABELS[row.Delivery.recipient_role].lower()}",
        )
        for row in late
    ]
    return sorted(items, key=lambda item: item.since)


def count_unsigned(session: Session, cpts_id: int, *, now: dt.datetime, limit: int = 200) -> int:
    """How many "unsigned" items `overdue` lists, from the candidates' end and program delays alone (plain columns
    run by the driver): the desk counts them on every view, and loading their professionals and programs as
    entities cost it more than the rest of its counts."""
    cutoff = now - dt.timedelta(hours=MIN_REPORT_DELAY_HOURS)
    rows = driver_rows(session, _unsigned_statement(limit), {"cpts_id": cpts_id, "cutoff": cutoff})
    return sum(1 for ends_at, program_id, delays in rows if ends_at + _signature_delay(program_id, delays) < now)


def late_counts_query(limit: int = 200) -> Select:
    """One row: how many "unrendered" and "unsent" items `overdue` lists (each part capped at `limit` as there), for
    a desk that reads it with its other counts. Parameters: cpts_id, now and `late_parameters(now)`."""
    _sessions, unrendered, deliveries = _overdue_statements(limit)
    return select(
        select(func.count()).select_from(unrendered.with_only_columns(Report.id).subquery()).scalar_subquery(),
        select(func.count()).select_from(deliveries.with_only_columns(Delivery.id).subquery()).scalar_subquery(),
    )


def late_parameters(now: dt.datetime) -> dict:
    return {"signed_before": now - RENDER_LATE}


@functools.cache
def _unsigned_statement(limit: int) -> Select:
    sessions, _unrendered, _deliveries = _overdue_statements(limit)
    return sessions.with_only_columns(
        Appointment.ends_at.label("ends_at"),
        SessionProgram.id.label("program_id"),
        SessionProgram.report_delays.label("report_delays"),
    )


@functools.lru_cache(maxsize=256)
def _signature_delay(program_id: int | None, report_delays: str | None) -> dt.timedelta:
    """signature_due_at's delay for a program's delays (a detached copy holding them: the rule stays the model's)."""
    program = SessionProgram(report_delays=report_delays) if program_id is not None else None
    epoch = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    return signature_due_at(epoch, program) - epoch


def _unrendered(row) -> OverdueItem:
    """A report of the worker's queue, late since RENDER_LATE after its signature, or since its failed rendering, or
    since the failed rendering of the earlier version it waits for (R7)."""
    late = row.signed_at + RENDER_LATE
    detail = "Document non mis en forme"
    if row.waits_for_version is not None:  # never claimed (R7): the earlier version's rendering is what is late
        detail += f" : en attente de la version {row.waits_for_version}"
        if row.waits_failed_at is not None:  # held up by that failure from the later of it and its own signature
            late = min(late, max(row.signed_at, row.waits_failed_at))
            detail += ", dont la mise en forme échoue"
    elif row.render_failed_at is not None:
        late = min(late, row.render_failed_at)
        detail += f" : la mise en forme a échoué ({row.render_attempts} tentative(s))"
    return OverdueItem(
        "unrendered", row.appointment_id, row.id, row.patient_id, row.Professional.full_name, late, detail
    )


@functools.cache
def _overdue_statements(limit: int) -> tuple[Select, Select, Select]:
    """overdue's three statements, built once with the CPTS and the times as parameters: building them on each call
    cost the coordinator's desk, which reads them on every view, more CPU than running them."""
    cpts_id = bindparam("cpts_id", type_=Integer)
    sessions = (
        select(Appointment.id, Appointment.patient_id, Appointment.ends_at, Professional, SessionProgram)
        .join(Professional, Professional.id == Appointment.performer_id)
        .outerjoin(SessionProgram, SessionProgram.id == Appointment.program_id)
        .where(
            Appointment.cpts_id == cpts_id,
            *awaiting_signature(),
            Appointment.ends_at < bindparam("cutoff", type_=UTCDateTime),
        )
        .order_by(Appointment.ends_at)
        .limit(limit)
    )
    # The worker's queue (its partial index), a handful of rows: a report not rendered by now is stuck. A correction
    # waiting for an earlier version still to render names it, and says when that one's rendering fails.
    waits_for_version = select(func.min(_OLDER.version)).where(*_earlier_waiting()).scalar_subquery()
    waits_failed_at = select(func.max(_OLDER.render_failed_at)).where(*_earlier_waiting()).scalar_subquery()
    unrendered = (
        select(
            Report.id,
            Report.appointment_id,
            Report.patient_id,
            Report.signed_at,
            Report.render_failed_at,
            Report.render_attempts,
            waits_for_version.label("waits_for_version"),
            waits_failed_at.label("waits_failed_at"),
            Professional,
        )
        .join(Professional, Professional.id == Report.author_id)
        .where(
            awaiting_rendering(),
            Report.cpts_id == cpts_id,
            or_(
                Report.signed_at < bindparam("signed_before", type_=UTCDateTime),
                Report.render_failed_at.is_not(None),
                exists().where(*_earlier_waiting(), _OLDER.render_failed_at.is_not(None)),
            ),
        )
        .order_by(Report.signed_at)
        .limit(limit)
    )
    deliveries = (
        select(Delivery, Report.patient_id, Report.appointment_id, Professional)
        .join(Report, Report.id == Delivery.report_id)
        .join(Professional, Professional.id == Report.author_id)
        .where(
            Delivery.cpts_id == cpts_id,
            Delivery.state.in_((DeliveryState.QUEUED, DeliveryState.FAILED)),
            Delivery.due_at < bindparam("now", type_=UTCDateTime),
        )
        .order_by(Delivery.due_at)
        .limit(limit)
    )
    return sessions, unrendered, deliveries


# Aliases made once: one made per call costs a read more than its statements (SQLAlchemy adapts its columns anew).
_LATER_OF_SERIES = aliased(Appointment, name="later_of_series")
_NEWER = aliased(Report, name="newer_version")


def a_later_session_of_the_series():
    """A waiver holds while the series goes on: a later télésoin session of the same patient with the same
    performer, planned or done. Once the later ones are cancelled, the waived session is the last one and
    needs its report after all."""
    later = _LATER_OF_SERIES
    return exists().where(
        later.patient_id == Appointment.patient_id,
        later.performer_id == Appointment.performer_id,
        later.kind == AppointmentKind.TELESOIN,
        later.starts_at > Appointment.starts_at,
        later.state.in_((*PLANNED, AppointmentState.DONE)),
    )


def alert_overdue(session: Session, *, now: dt.datetime | None = None) -> int:
    """One e-mail to each coordinator of the CPTS per late item (ids only, no health data); the key makes
    a second run, or a second worker, queue nothing more."""
    now = now or utcnow()
    queued = 0
    for cpts_id, pros in directory.coordinators_by_cpts(session).items():
        # One alert per late report (or unsigned session) and coordinator, however many of its deliveries wait.
        keys = {
            f"{item.kind}:{item.appointment_id or 0}:{item.report_id or 0}:{pro.id}": (item, pro)
            for item in overdue(session, cpts_id, now=now)
            for pro in pros
        }
        already = (
            set(
                session.scalars(
                    select(OutboxMessage.idempotency_key).where(
                        OutboxMessage.idempotency_key.in_([f"{ALERT_KIND}:{key}" for key in keys])
                    )
                )
            )
            if keys
            else set()
        )
        for key, (item, pro) in keys.items():
            if f"{ALERT_KIND}:{key}" in already:
                continue
            payload = {"appointment_id": item.appointment_id, "report_id": item.report_id, "late": item.kind}
            if outbox.email_professional(session, pro, kind=ALERT_KIND, key=key, cpts_id=cpts_id, payload=payload):
                queued += 1
    return queued


# --- « Ma séance » ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorklistRow:
    """A patient of the professional's session day, with what they need to see them and write the report."""

    appointment: Appointment
    age: int
    identity_checked_by: str | None
    referrals: list[Referral]
    report: Report | None  # the latest version
    can_start: bool
    checks: list[str]  # the HAS pre-session checklist's items the IDEL ticked (camera, sound…)


def worklist(session: Session, professional_id: int, day: dt.date, *, zone: str) -> list[WorklistRow]:
    """The day's sessions the professional performs: five queries whatever the number of appointments."""
    start, end = day_bounds(day, zone)
    appointments = session.scalars(
        select(Appointment)
        .options(joinedload(Appointment.patient), joinedload(Appointment.accompanying))
        .where(Appointment.performer_id == professional_id, Appointment.starts_at >= start, Appointment.starts_at < end)
        .order_by(Appointment.starts_at, Appointment.id)
    ).all()
    ids = [a.id for a in appointments] or [0]
    referrals: dict[int | None, list[Referral]] = {}  # keyed by the nullable column, never None here
    for referral in session.scalars(
        select(Referral).options(selectinload(Referral.attachments)).where(Referral.appointment_id.in_(ids))
    ):
        referrals.setdefault(referral.appointment_id, []).append(referral)
    latest: dict[int | None, Report] = {}
    for report in session.scalars(select(Report).where(Report.appointment_id.in_(ids)).order_by(Report.version)):
        latest[report.appointment_id] = report
    checkers = [a.identity_checked_by_user_id for a in appointments if a.identity_checked_by_user_id] or [0]
    names: dict[int | None, str] = dict(
        session.execute(select(User.id, User.display_name).where(User.id.in_(checkers))).all()
    )
    return [
        WorklistRow(
            appointment=a,
            age=a.patient.age_on(day),
            identity_checked_by=names.get(a.identity_checked_by_user_id),
            referrals=referrals.get(a.id, []),
            report=latest.get(a.id),
            can_start=a.kind in REPORTABLE_KINDS and a.state in WRITABLE,
            checks=[name for name, ticked in json.loads(a.checklist or "{}").items() if ticked is True],
        )
        for a in appointments
    ]


# --- reading -----------------------------------------------------------------------------------------------


def chain_of(session: Session, report: Report) -> list[Report]:
    """Every version of the report, oldest first."""
    return list(session.scalars(select(Report).where(Report.root_id == report.root_id).order_by(Report.version)))


def current_reports(session: Session, where, *, limit: int = 200) -> list[Report]:
    """The latest version of each report matching `where`, with patient and author, in one query."""
    newer = _NEWER
    latest = ~exists().where(and_(newer.root_id == Report.root_id, newer.version > Report.version))
    return list(
        session.scalars(
            select(Report)
            .where(where, latest)
            .options(joinedload(Report.patient), joinedload(Report.author))
            .order_by(Report.performed_at.desc())
            .limit(limit)
        )
    )


def _author(actor: Actor, professional_id: int | None) -> int:
    """The author's professional id: the actor's own, who must be the act's (no read: the API's Caller carries it)."""
    if actor.professional_id is None or actor.professional_id != professional_id:
        raise RuleViolation("Seul le professionnel qui a réalisé l'acte rédige et signe son compte rendu.")
    return actor.professional_id


def _lock(session: Session, row, *load) -> None:
    """The row's lock and its fresh read, in one statement (autoflushed first): two verbs on one report run one
    after the other. SQLite's BEGIN IMMEDIATE transaction already serialises writers. `load`: the loader options
    of what the verb reads next (many-to-one only: the lock is taken on the row's table alone). Read so already in
    this transaction (the API's access check, report_for / appointment_for with `lock`), it is not read again."""
    if row_locks.held(session, row):
        return
    model = type(row)
    session.execute(
        select(model)
        .where(model.id == row.id)
        .options(*load)
        .with_for_update(of=model)
        .execution_options(populate_existing=True)
    ).scalar_one()
