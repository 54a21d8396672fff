"""The job runner: one scheduler for the whole deployment, and each periodic job once per period.

Two guards, each enough on its own for correctness of the other's failure:
- a singleton lease (`scheduler_leases` row): only the worker holding it runs APScheduler, and a
  standby takes over when the holder stops renewing it (it died, or lost the database);
- a unique (job, period) row written before the work (`job_runs`): a second scheduler started by
  mistake, a fire repeated by the 25-hour day, or a catch-up after a take-over finds the row and skips.

Never started by the web application (R9): only `flask --app wsgi hub worker` builds a Worker.
"""

import datetime as dt
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hub.db import session_scope, utcnow
from hub.models import JobRun, SchedulerLease
from scheduling.periodic import JobContext, PeriodicJob

log = logging.getLogger(__name__)

DEFAULT_LEASE_TTL = dt.timedelta(seconds=30)
DEFAULT_LOOP_INTERVAL = dt.timedelta(seconds=5)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"[:120]


# --- once per period -----------------------------------------------------------------------------------


def run_periodic(
    session_factory: sessionmaker[Session],
    job_name: str,
    period_key: str,
    fn: Callable[[], str | None],
    *,
    worker: str | None = None,
) -> bool:
    """Run `fn` once for (job, period): the JobRun row is committed first, so a second process (or a
    second fire) inserting the same key gets an IntegrityError and skips. Returns whether it ran.
    A failure is recorded on the row and re-raised; the period is not retried."""
    try:
        with session_scope(session_factory) as session:
            run = JobRun(job=job_name, period=period_key, worker=(worker or worker_name())[:120], started_at=utcnow())
            session.add(run)
    except IntegrityError:
        log.debug("job %s: period %s already run", job_name, period_key)
        return False
    try:
        outcome = fn()
    except Exception as exc:
        _finish(session_factory, run.id, f"échec ({type(exc).__name__})")
        raise
    _finish(session_factory, run.id, (outcome or "terminé")[:200])
    return True


def _finish(session_factory: sessionmaker[Session], run_id: int, outcome: str) -> None:
    with session_scope(session_factory) as session:
        session.execute(update(JobRun).where(JobRun.id == run_id).values(finished_at=utcnow(), outcome=outcome))


def last_fire_time(trigger, now: dt.datetime, *, lookback: dt.timedelta) -> dt.datetime | None:
    """The trigger's latest fire time in (now - lookback, now], in UTC, or None. On the 25-hour day a
    wall time happens twice: both are fire times, and the later one is returned after it.

    (In UTC because Python never finds two aware datetimes equal across zones when one of them falls
    in a repeated hour: PEP 495.)"""
    now_utc = now.astimezone(dt.UTC)
    cursor = now_utc - lookback
    previous = last = None
    while True:
        fire = trigger.get_next_fire_time(previous, cursor)
        if fire is None or fire.astimezone(dt.UTC) > now_utc:
            return last
        previous, last = fire, fire.astimezone(dt.UTC)
        cursor = last + dt.timedelta(microseconds=1)


def fire_periodic(
    session_factory: sessionmaker[Session],
    job: PeriodicJob,
    context: JobContext,
    *,
    now: dt.datetime | None = None,
    worker: str | None = None,
) -> bool:
    """Run `job` for the period of its latest fire time (within its grace), unless that period has run.
    Used both when APScheduler fires the job and when a new leader catches up on a fire it missed."""
    now = now or utcnow()
    scheduled = last_fire_time(job.trigger(context.zone), now, lookback=job.grace)
    if scheduled is None:
        return False
    period = job.period_key(scheduled, context.zone)
    return run_periodic(session_factory, job.name, period, lambda: job.run(context, now=now), worker=worker)


# --- the singleton lease -------------------------------------------------------------------------------


def acquire_lease(
    session_factory: sessionmaker[Session],
    *,
    name: str = "scheduler",
    holder: str,
    ttl: dt.timedelta,
    now: dt.datetime | None = None,
) -> bool:
    """Take the lease if it is free or expired, or renew it if `holder` has it: one atomic upsert
    (`INSERT … ON CONFLICT DO UPDATE … WHERE`), on PostgreSQL and SQLite alike. True when held."""
    now = now or utcnow()
    table = SchedulerLease.__table__
    with session_scope(session_factory) as session:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table).values(name=name, holder=holder, expires_at=now + ttl)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={"holder": statement.excluded.holder, "expires_at": statement.excluded.expires_at},
            where=or_(table.c.holder == holder, table.c.expires_at < now),
        ).returning(table.c.holder)
        return session.execute(statement).first() is not None


def release_lease(session_factory: sessionmaker[Session], *, name: str = "scheduler", holder: str) -> None:
    """Give the lease up at a clean stop, so that a standby need not wait for it to expire."""
    with session_scope(session_factory) as session:
        session.execute(delete(SchedulerLease).where(SchedulerLease.name == name, SchedulerLease.holder == holder))


# --- the worker ----------------------------------------------------------------------------------------


class Worker:
    """Loops taking or renewing the lease; while it holds it, runs APScheduler with the periodic jobs and
    the given loops (the outbox dispatcher) every `loop_interval`. Loses the lease → stops scheduling.

    `tick` (default: a quarter of the lease) is how often the lease is renewed: a standby takes over at
    most `lease_ttl + tick` after the leader's last renewal.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        jobs: Sequence[PeriodicJob],
        context: JobContext,
        loops: Sequence[Callable[[], object]] = (),
        lease_name: str = "scheduler",
        lease_ttl: dt.timedelta = DEFAULT_LEASE_TTL,
        loop_interval: dt.timedelta = DEFAULT_LOOP_INTERVAL,
        tick: dt.timedelta | None = None,
        holder: str | None = None,
    ):
        self.session_factory = session_factory
        self.jobs = list(jobs)
        self.context = context
        self.loops = list(loops)
        self.lease_name = lease_name
        self.lease_ttl = lease_ttl
        self.loop_interval = loop_interval
        self.tick_interval = tick or lease_ttl / 4
        self.holder = holder or worker_name()
        self._stopping = threading.Event()
        self._scheduler: BackgroundScheduler | None = None
        self._lease_until: dt.datetime | None = None

    @property
    def zone(self) -> ZoneInfo:
        return self.context.zone

    @property
    def is_leader(self) -> bool:
        return self._scheduler is not None

    def run(self) -> None:
        """Block until stop(): renew the lease every tick, start or stop the scheduler accordingly."""
        log.info("worker %s started", self.holder)
        try:
            while not self._stopping.is_set():
                self.tick()
                self._stopping.wait(self.tick_interval.total_seconds())
        finally:
            self._step_down()
            try:
                release_lease(self.session_factory, name=self.lease_name, holder=self.holder)
            except Exception:
                log.exception("worker %s: could not release the lease", self.holder)
            log.info("worker %s stopped", self.holder)

    def stop(self) -> None:
        """Ask run() to return (safe from a signal handler)."""
        self._stopping.set()

    def tick(self) -> None:
        now = utcnow()
        try:
            held = acquire_lease(
                self.session_factory, name=self.lease_name, holder=self.holder, ttl=self.lease_ttl, now=now
            )
        except Exception:
            log.exception("worker %s: lease check failed; not scheduling until it works again", self.holder)
            held = False
        self._lease_until = now + self.lease_ttl if held else None
        if held and self._scheduler is None:
            self._take_over()
        elif not held and self._scheduler is not None:
            log.warning("worker %s lost the scheduler lease", self.holder)
            self._step_down()

    def _holds_lease(self) -> bool:
        # A worker paused past its lease (a long GC, a stopped VM) does not act before renewing it.
        return self._lease_until is not None and utcnow() < self._lease_until

    def _take_over(self) -> None:
        log.info("worker %s holds the scheduler lease: scheduling", self.holder)
        scheduler = BackgroundScheduler(
            timezone=self.zone, job_defaults={"coalesce": True, "max_instances": 1}, daemon=True
        )
        for job in self.jobs:
            scheduler.add_job(
                self._fire,
                trigger=job.trigger(self.zone),
                args=[job],
                id=job.name,
                name=job.name,
                misfire_grace_time=max(1, int(job.grace.total_seconds())),
            )
            # A fire missed while nobody held the lease (the previous leader died) runs now, once.
            scheduler.add_job(self._fire, args=[job], id=f"catch-up:{job.name}", name=f"catch-up:{job.name}")
        for index, loop in enumerate(self.loops):
            scheduler.add_job(
                self._run_loop,
                trigger=IntervalTrigger(seconds=self.loop_interval.total_seconds(), timezone=self.zone),
                args=[loop],
                id=f"loop:{index}",
                next_run_time=utcnow(),
            )
        scheduler.start()
        self._scheduler = scheduler

    def _step_down(self) -> None:
        # Not the leader any more only once the jobs already running have finished: nothing runs after.
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
        self._scheduler = None

    def _fire(self, job: PeriodicJob) -> None:
        if not self._holds_lease():
            return
        fire_periodic(self.session_factory, job, self.context, worker=self.holder)

    def _run_loop(self, loop: Callable[[], object]) -> None:
        if self._holds_lease():
            loop()
