"""The periodic jobs: reminders and the patients' video links, escalation of unconfirmed visits, the
own-IDEL-first delay, the slot horizon, late reports, téléexpertise deadlines and the purge of short-lived rows.
`hub worker` runs PERIODIC_JOBS, all of them, under the scheduler lease.

Each job is a PeriodicJob (scheduling.periodic): run(context, *, now), in its own session scopes, idempotent,
claiming the rows it changes with locks, and recorded once per period by the runner
(scheduling.runner.run_periodic). The job names key the JobRun rows: renaming a job runs it again.
"""

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload

from connectors import outbox
from hub.db import rows_changed, session_scope
from hub.errors import describe_failure
from hub.models import (
    Appointment,
    AppointmentKind,
    AppointmentState,
    IdempotentRequest,
    LoginAttempt,
    OutboxMessage,
    SessionProgram,
    UserSession,
    VisitOffer,
    VisitOfferState,
)
from hub.services import directory
from scheduling.periodic import JobContext, PeriodicJob, local_day, local_hour, ten_minutes
from workflows import freed_slots, reports, teleexpertise, video
from workflows.appointments import offer_to_other_idels

log = logging.getLogger(__name__)

ESCALATION_WINDOW = dt.timedelta(hours=48)
CHUNK = 200


# --- slots ---------------------------------------------------------------------------------------------


def roll_slot_horizon(ctx: JobContext, *, now: dt.datetime) -> str:
    """Extend every active program's slots to its horizon. Each program in its own transaction, with
    its row locked, so that a coordinator editing the program waits or is waited for."""
    with session_scope(ctx.session_factory) as session:
        program_ids = list(
            session.scalars(
                select(SessionProgram.id).where(SessionProgram.is_active.is_(True)).order_by(SessionProgram.id)
            )
        )
    created = failed = 0
    for program_id in program_ids:
        try:
            with session_scope(ctx.session_factory) as session:
                program = session.scalar(
                    _locked(
                        session,
                        select(SessionProgram).where(
                            SessionProgram.id == program_id, SessionProgram.is_active.is_(True)
                        ),
                        skip_locked=False,
                    )
                )
                if program is not None:
                    created += freed_slots.generate_slots(session, program, now=now).created
        except Exception as exc:
            failed += 1
            log.error("roll_slot_horizon: program %s failed\n%s", program_id, describe_failure(exc))
    return f"{len(program_ids)} programme(s), {created} créneau(x) créé(s), {failed} échec(s)"


# --- reminders and escalation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """One outbox message to queue, built while reading, written afterwards."""

    key: str
    channel: str
    recipient: str
    kind: str
    payload: dict
    cpts_id: int


def send_reminders(ctx: JobContext, *, now: dt.datetime) -> str:
    """The day before, one reminder to the accompanying IDEL and one to the patient (SMS when a phone is
    known, else e-mail) for each confirmed appointment of the next local day. A date, a time and ids:
    no health data. Keyed `reminder:<appointment>:<recipient kind>:<local date>`, so a re-run adds nothing."""
    day = now.astimezone(ctx.zone).date() + dt.timedelta(days=1)
    start, end = _local_day_bounds(day, ctx.zone)
    notices: list[Notice] = []
    with session_scope(ctx.session_factory) as session:
        appointments = session.scalars(
            select(Appointment)
            .where(
                Appointment.state == AppointmentState.CONFIRMED,
                Appointment.starts_at >= start,
                Appointment.starts_at < end,
            )
            .options(selectinload(Appointment.patient), selectinload(Appointment.accompanying))
            .order_by(Appointment.id)
        )
        for appointment in appointments:
            notices.extend(_reminders_of(appointment, day, ctx.zone))
    created = _enqueue_missing(ctx, notices)
    return f"{created} rappel(s) mis en file pour le {day.isoformat()}"


def _reminders_of(appointment: Appointment, day: dt.date, zone: ZoneInfo) -> Iterator[Notice]:
    when = appointment.accompaniment_window[0].astimezone(zone)
    base = {
        "appointment_id": appointment.id,
        "local_date": when.date().isoformat(),
        "local_time": when.strftime("%H:%M"),
    }
    idel = appointment.accompanying
    if idel is not None and idel.email:
        yield Notice(
            key=f"reminder:{appointment.id}:idel:{day.isoformat()}",
            channel="email",
            recipient=idel.email,
            kind="reminder",
            payload=base | {"recipient_kind": "idel"},
            cpts_id=appointment.cpts_id,
        )
    patient = appointment.patient
    channel, address = ("sms", patient.phone) if patient.phone else ("email", patient.email)
    if address:
        yield Notice(
            key=f"reminder:{appointment.id}:patient:{day.isoformat()}",
            channel=channel,
            recipient=address,
            kind="reminder",
            payload=base | {"recipient_kind": "patient"},
            cpts_id=appointment.cpts_id,
        )


def send_video_links(ctx: JobContext, *, now: dt.datetime) -> str:
    """The day before, each patient of a confirmed remote session whose program names a video tool gets their
    link (workflows.video: a date, a time and the hub link, nothing of health), unless a person already sent it.
    Each session in its own transaction, its row locked."""
    day = now.astimezone(ctx.zone).date() + dt.timedelta(days=1)
    start, end = _local_day_bounds(day, ctx.zone)
    with session_scope(ctx.session_factory) as session:
        due = video.due_link_ids(session, starts_from=start, starts_before=end)
    sent = 0
    for appointment_id in due:
        with session_scope(ctx.session_factory) as session:
            sent += video.send_due_link(session, appointment_id, now=now)
    return f"{sent} lien(s) de visio envoyé(s) pour le {day.isoformat()}"


def escalate_unconfirmed(ctx: JobContext, *, now: dt.datetime) -> str:
    """A visit still proposed less than 48 h before it starts: one e-mail to each coordinator of its CPTS
    (a user with the coordinator role, linked to a professional with an e-mail), once per appointment
    and coordinator: `escalation:<appointment>:<coordinator's professional id>`."""
    notices: list[Notice] = []
    with session_scope(ctx.session_factory) as session:
        appointments = session.execute(
            select(Appointment.id, Appointment.cpts_id, Appointment.starts_at)
            .where(
                Appointment.state == AppointmentState.PROPOSED,
                Appointment.starts_at > now,
                Appointment.starts_at <= now + ESCALATION_WINDOW,
            )
            .order_by(Appointment.id)
        ).all()
        coordinators = directory.coordinators_by_cpts(session, {a.cpts_id for a in appointments})
        for appointment in appointments:
            when = appointment.starts_at.astimezone(ctx.zone)
            payload = {
                "appointment_id": appointment.id,
                "local_date": when.date().isoformat(),
                "local_time": when.strftime("%H:%M"),
                "recipient_kind": "coordinator",
            }
            for coordinator in coordinators.get(appointment.cpts_id, []):
                if not coordinator.email:
                    continue
                notices.append(
                    Notice(
                        key=f"escalation:{appointment.id}:{coordinator.id}",
                        channel="email",
                        recipient=coordinator.email,
                        kind="escalation",
                        payload=payload,
                        cpts_id=appointment.cpts_id,
                    )
                )
    created = _enqueue_missing(ctx, notices)
    return f"{len(appointments)} visite(s) non confirmée(s), {created} alerte(s) mise(s) en file"


# --- the own-IDEL-first delay --------------------------------------------------------------------------


def expiring_own_idel_offers(now: dt.datetime):
    """Proposed assisted teleconsultations still held by the patient's own IDEL whose round-1 offer is
    pending past its delay, and not yet offered to the others (no round-2 offer). Widening releases the
    own IDEL's hold, so a widened visit no longer matches, even when nobody else could be asked."""
    first, second = aliased(VisitOffer), aliased(VisitOffer)
    return and_(
        Appointment.state == AppointmentState.PROPOSED,
        Appointment.kind == AppointmentKind.ASSISTED_TELECONSULTATION,
        Appointment.accompanying_id.is_not(None),
        exists().where(
            first.appointment_id == Appointment.id,
            first.professional_id == Appointment.accompanying_id,
            first.round == 1,
            first.state == VisitOfferState.PENDING,
            first.expires_at <= now,
        ),
        ~exists().where(second.appointment_id == Appointment.id, second.round == 2),
    )


def expire_own_idel_delay(ctx: JobContext, *, now: dt.datetime) -> str:
    """The own-IDEL-first delay ran out: offer the visit to the territory's other suitable IDELs. Each
    appointment in its own transaction, claimed `FOR UPDATE SKIP LOCKED` on PostgreSQL and checked
    again under the lock, so that it is widened once even if two runs overlap."""
    condition = expiring_own_idel_offers(now)
    with session_scope(ctx.session_factory) as session:
        candidate_ids = list(session.scalars(select(Appointment.id).where(condition).order_by(Appointment.id)))
    widened = failed = 0
    for appointment_id in candidate_ids:
        try:
            with session_scope(ctx.session_factory) as session:
                claim = select(Appointment).where(Appointment.id == appointment_id, condition)
                appointment = session.scalar(_locked(session, claim, skip_locked=True, of=Appointment))
                if appointment is not None:
                    offer_to_other_idels(session, appointment, now=now)
                    widened += 1
        except Exception as exc:
            failed += 1
            log.error("expire_own_idel_delay: appointment %s failed\n%s", appointment_id, describe_failure(exc))
    return f"{widened} visite(s) proposée(s) aux autres IDEL, {failed} échec(s)"


# --- téléexpertise and reports ------------------------------------------------------------------------


def expire_teleexpertise(ctx: JobContext, *, now: dt.datetime) -> str:
    """Téléexpertise requests still unanswered past their deadline become `expired`."""
    return teleexpertise.expire_overdue(ctx.session_factory, now)


def alert_overdue_reports(ctx: JobContext, *, now: dt.datetime) -> str:
    """Reports not signed or not sent within their delay: one e-mail per late item to each coordinator."""
    with session_scope(ctx.session_factory) as session:
        queued = reports.alert_overdue(session, now=now)
    return f"{queued} alerte(s) de compte rendu en retard"


# --- housekeeping --------------------------------------------------------------------------------------


# How long rows that only serve a short purpose are kept.
RETENTION = {
    "idempotent_requests": dt.timedelta(days=7),  # a client retries within minutes, not weeks
    "login_attempts": dt.timedelta(days=2),  # the throttling window is 15 minutes
    "ended_user_sessions": dt.timedelta(days=30),
}


def purge_expired_rows(ctx: JobContext, *, now: dt.datetime) -> str:
    """Delete what has outlived its purpose: replayable answers to Idempotency-Keys, login attempts past
    the throttling window, sessions ended long ago. The audit log keeps the trace of each of them."""
    with session_scope(ctx.session_factory) as session:
        counts = [
            rows_changed(
                session,
                delete(IdempotentRequest).where(IdempotentRequest.created_at < now - RETENTION["idempotent_requests"]),
            ),
            rows_changed(
                session, delete(LoginAttempt).where(LoginAttempt.attempted_at < now - RETENTION["login_attempts"])
            ),
            rows_changed(
                session, delete(UserSession).where(UserSession.ended_at < now - RETENTION["ended_user_sessions"])
            ),
        ]
    return "{} réponse(s) rejouable(s), {} tentative(s) de connexion, {} session(s) supprimée(s)".format(*counts)


# --- helpers -------------------------------------------------------------------------------------------


def _locked(session: Session, statement, *, skip_locked: bool, of=None):
    """Row locks on PostgreSQL; SQLite's BEGIN IMMEDIATE transaction already serialises writers."""
    if session.get_bind().dialect.name != "postgresql":
        return statement
    return statement.with_for_update(skip_locked=skip_locked, of=of)


def _local_day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def _enqueue_missing(ctx: JobContext, notices: list[Notice]) -> int:
    """Queue the notices whose key is not in the outbox yet. Fast path: one transaction per chunk; if a
    concurrent run queued some of them meanwhile, the chunk is redone with a savepoint per message."""
    created = 0
    for chunk in _chunks(notices, CHUNK):
        try:
            with session_scope(ctx.session_factory) as session:
                created += _add_missing(session, chunk, savepoints=False)
        except IntegrityError:
            with session_scope(ctx.session_factory) as session:
                created += _add_missing(session, chunk, savepoints=True)
    return created


def _add_missing(session: Session, notices: list[Notice], *, savepoints: bool) -> int:
    known = set(
        session.scalars(
            select(OutboxMessage.idempotency_key).where(OutboxMessage.idempotency_key.in_([n.key for n in notices]))
        )
    )
    created = 0
    for notice in notices:
        if notice.key in known:
            continue
        if not savepoints:
            _enqueue(session, notice)
            created += 1
            continue
        try:
            with session.begin_nested():
                _enqueue(session, notice)
                session.flush()
            created += 1
        except IntegrityError:
            pass  # queued by the other run
    session.flush()
    return created


def _enqueue(session: Session, notice: Notice) -> None:
    outbox.enqueue(
        session,
        channel=notice.channel,
        recipient=notice.recipient,
        kind=notice.kind,
        payload=notice.payload,
        idempotency_key=notice.key,
        cpts_id=notice.cpts_id,
    )


def _chunks(items: list, size: int) -> Iterable[list]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


PERIODIC_JOBS: list[PeriodicJob] = [
    PeriodicJob("purge_expired_rows", "30 3 * * *", purge_expired_rows, local_day, grace=dt.timedelta(hours=12)),
    PeriodicJob("roll_slot_horizon", "0 2 * * *", roll_slot_horizon, local_day, grace=dt.timedelta(hours=12)),
    PeriodicJob("send_reminders", "0 18 * * *", send_reminders, local_day, grace=dt.timedelta(hours=5)),
    PeriodicJob("escalate_unconfirmed", "0 * * * *", escalate_unconfirmed, local_hour),
    PeriodicJob(
        "expire_own_idel_delay", "*/10 * * * *", expire_own_idel_delay, ten_minutes, grace=dt.timedelta(minutes=10)
    ),
    PeriodicJob("alert_overdue_reports", "15 * * * *", alert_overdue_reports, local_hour),
    PeriodicJob("expire_teleexpertise", "5 * * * *", expire_teleexpertise, local_hour),
    PeriodicJob("send_video_links", "5 18 * * *", send_video_links, local_day, grace=dt.timedelta(hours=5)),
]
