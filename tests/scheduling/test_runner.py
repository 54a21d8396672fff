"""The scheduler singleton (R8) and its absence from web workers (R9), with real processes.

R8 starts three worker processes at once on a test job that fires every second: one holds the lease
and runs the job, once per period; SIGKILL on it lets a standby take over within the lease's time.
R9 serves the app with gunicorn and two workers: no lease is taken, no job runs.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select, update

from connectors import outbox
from connectors.email import message_id_for
from hub import audit
from hub.config import PROJECT_ROOT
from hub.db import utcnow
from hub.models import AuditEvent, AuditLink, JobRun, OutboxMessage, OutboxState, SchedulerLease
from scheduling.periodic import JobContext, PeriodicJob, utc_second
from scheduling.runner import Worker, acquire_lease, release_lease
from tests import factories
from tests.servers import SmtpServer, TestCA, free_port

PARIS = ZoneInfo("Europe/Paris")
BIN = Path(sys.executable).parent

WORKER_SCRIPT = """
import datetime as dt, os, signal, sys
from zoneinfo import ZoneInfo
from hub.db import make_engine, make_session_factory
from scheduling.periodic import JobContext, PeriodicJob, utc_second
from scheduling.runner import Worker

url, lease_name, job_name, log_path = sys.argv[1:5]
sessions = make_session_factory(make_engine(url))

def every_second(context, *, now):
    with open(log_path, "a") as log:
        log.write(f"{os.getpid()}\\n")

job = PeriodicJob(job_name, "* * * * * *", every_second, utc_second, grace=dt.timedelta(seconds=1))
worker = Worker(
    sessions,
    jobs=[job],
    context=JobContext(sessions, ZoneInfo("Europe/Paris")),
    lease_name=lease_name,
    lease_ttl=dt.timedelta(seconds=2),
    tick=dt.timedelta(milliseconds=250),
)
signal.signal(signal.SIGTERM, lambda *_: worker.stop())
worker.run()
"""


def wait_for(predicate, *, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def lease_holder(factory, name: str) -> str | None:
    with factory() as session:
        lease = session.get(SchedulerLease, name)
        return lease.holder if lease is not None and lease.expires_at > utcnow() else None


def pid_of(holder: str | None) -> int | None:
    return int(holder.split(":")[1]) if holder else None


def child_env(database_url: str, **extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUB_")}
    return (
        env
        | {
            "HUB_ENV": "testing",
            "HUB_SECRET_KEY": "test-secret-key-that-is-long-enough-to-pass",
            "HUB_DATABASE_URL": database_url,
            # The worker's audit sequencer checkpoints the test database's chain: not into the instance folder.
            "HUB_AUDIT_CHECKPOINT_FILE": os.path.join(tempfile.gettempdir(), f"hub-test-audit-{os.getpid()}.jsonl"),
            "FLASK_APP": "wsgi",
        }
        | extra
    )


@pytest.fixture
def lease_name(committed):
    factory, _ = committed
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    with factory() as session:
        session.execute(delete(SchedulerLease).where(SchedulerLease.name == name))
        session.commit()


# --- the lease -------------------------------------------------------------------------------------------


def test_the_lease_goes_to_one_holder_until_it_expires(committed, lease_name):
    factory, _ = committed
    ttl = dt.timedelta(seconds=30)
    now = utcnow()

    def take(holder, at):
        return acquire_lease(factory, name=lease_name, holder=holder, ttl=ttl, now=at)

    assert take("a", now)
    assert not take("b", now + dt.timedelta(seconds=1))
    assert take("a", now + dt.timedelta(seconds=20))  # renewed: now good until +50 s
    assert not take("b", now + dt.timedelta(seconds=45))
    assert take("b", now + dt.timedelta(seconds=51))  # expired: taken over
    assert not take("a", now + dt.timedelta(seconds=52))
    release_lease(factory, name=lease_name, holder="a")  # not a's to give up
    assert lease_holder(factory, lease_name) == "b"
    release_lease(factory, name=lease_name, holder="b")
    assert take("a", now + dt.timedelta(seconds=53))


@pytest.mark.concurrency
def test_of_many_holders_trying_at_once_one_gets_the_lease(committed, lease_name):
    factory, _ = committed
    barrier = threading.Barrier(8)
    winners = []

    def attempt(holder):
        barrier.wait()
        if acquire_lease(factory, name=lease_name, holder=holder, ttl=dt.timedelta(seconds=30)):
            winners.append(holder)

    threads = [threading.Thread(target=attempt, args=(f"h{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert lease_holder(factory, lease_name) == winners[0]


@pytest.mark.concurrency
def test_a_worker_that_loses_its_lease_stops_scheduling(committed, lease_name):
    factory, _ = committed
    runs = []
    job = PeriodicJob(f"job-{lease_name}", "* * * * * *", lambda context, *, now: runs.append(now), utc_second)
    worker = Worker(
        factory,
        jobs=[job],
        context=JobContext(factory, PARIS),
        lease_name=lease_name,
        lease_ttl=dt.timedelta(seconds=2),
        tick=dt.timedelta(milliseconds=100),
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert wait_for(lambda: worker.is_leader and runs, timeout=5)
        with factory() as session:  # another worker took the lease (this one was paused too long, say)
            session.execute(
                update(SchedulerLease)
                .where(SchedulerLease.name == lease_name)
                .values(holder="someone-else", expires_at=utcnow() + dt.timedelta(minutes=1))
            )
            session.commit()
        assert wait_for(lambda: not worker.is_leader, timeout=3)
        count = len(runs)
        time.sleep(1.5)
        assert len(runs) == count
    finally:
        worker.stop()
        thread.join(timeout=10)
        with factory() as session:
            session.execute(delete(JobRun).where(JobRun.job == job.name))
            session.commit()
    assert not thread.is_alive()
    assert lease_holder(factory, lease_name) == "someone-else"  # a stopping worker gives up only its own lease


# --- R8 ------------------------------------------------------------------------------------------------


@pytest.mark.concurrency
def test_r8_three_workers_run_a_periodic_job_once_per_period_and_a_standby_takes_over(
    committed, database_url, lease_name, tmp_path
):
    factory, _ = committed
    job_name = f"r8-{lease_name}"
    log_path = tmp_path / "runs.log"
    log_path.touch()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, database_url, lease_name, job_name, str(log_path)],
            cwd=PROJECT_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        leader = pid_of(wait_for(lambda: lease_holder(factory, lease_name), timeout=15))
        assert leader in {w.pid for w in workers}
        assert wait_for(lambda: len(log_path.read_text().split()) >= 3, timeout=10)
        assert set(log_path.read_text().split()) == {str(leader)}  # only the leader runs the job

        os.kill(leader, signal.SIGKILL)
        killed_at = time.monotonic()

        def new_leader():
            pid = pid_of(lease_holder(factory, lease_name))
            return pid if pid not in (None, leader) else None

        successor = wait_for(new_leader, timeout=6, interval=0.05)
        takeover = time.monotonic() - killed_at
        assert successor not in (None, leader)
        assert takeover < 2 + 0.25 + 1.5  # lease ttl + tick, and some slack for a loaded machine
        lines_at_takeover = len(log_path.read_text().split())
        assert wait_for(lambda: len(log_path.read_text().split()) >= lines_at_takeover + 2, timeout=10)
    finally:
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        errors = [process.communicate(timeout=15)[1] for process in workers]

    runners = log_path.read_text().split()
    with factory() as session:
        periods = session.scalars(select(JobRun.period).where(JobRun.job == job_name)).all()
        session.execute(delete(JobRun).where(JobRun.job == job_name))
        session.commit()
    assert set(runners) == {str(leader), str(successor)}  # the third worker stayed a standby throughout
    assert runners.index(str(successor)) > max(i for i, pid in enumerate(runners) if pid == str(leader))
    assert len(periods) == len(set(periods))
    assert len(runners) <= len(periods) <= len(runners) + 1  # a run per period; SIGKILL may cut one short
    assert [w.returncode for w in workers if w.pid != leader] == [0, 0], errors  # SIGTERM stops cleanly
    print(f"R8: take-over {takeover:.2f} s after SIGKILL; {len(periods)} periods run")


def audit_linked(factory, action: str) -> bool:
    with factory() as session:
        linked = select(AuditLink.seq).join(AuditEvent, AuditEvent.id == AuditLink.event_id)
        return session.scalar(linked.where(AuditEvent.action == action)) is not None


@pytest.mark.concurrency
def test_the_hub_worker_command_schedules_dispatches_and_stops_cleanly_on_sigterm(committed, database_url, tmp_path):
    """`flask --app wsgi hub worker`: takes the lease, delivers the outbox over verified STARTTLS, and on
    SIGTERM stops and gives the lease up at once."""
    factory, created = committed
    with factory() as session:
        session.execute(delete(SchedulerLease).where(SchedulerLease.name == "scheduler"))
        org = factories.cpts(session)
        created.append(org.id)
        message = outbox.enqueue(
            session,
            channel="email",
            recipient="idel@example.org",
            kind="reminder",
            payload={"appointment_id": 1, "local_date": "2026-03-30", "local_time": "14:00"},
            idempotency_key=f"worker:{uuid.uuid4().hex}",
            cpts_id=org.id,
        )
        audited = f"test.worker.{uuid.uuid4().hex[:8]}"
        audit.record(session, actor="test", action=audited)
        session.commit()
    ca = TestCA(tmp_path)
    with SmtpServer(tls_context=ca.server_context()) as smtp:
        smtp_env = {f"HUB_{key}": str(value) for key, value in smtp.config(ca.ca_file).items()}
        process = subprocess.Popen(
            [str(BIN / "flask"), "--app", "wsgi", "hub", "worker"],
            cwd=PROJECT_ROOT,
            env=child_env(database_url, HUB_WORKER_LEASE_SECONDS="2", HUB_DISPATCH_INTERVAL_SECONDS="1", **smtp_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            holder = wait_for(lambda: lease_holder(factory, "scheduler"), timeout=20)
            assert pid_of(holder) == process.pid
            expected = message_id_for(message.idempotency_key, "cpts-test.fr")
            assert wait_for(lambda: smtp.message_ids()[expected] == 1, timeout=15)
            assert wait_for(lambda: audit_linked(factory, audited), timeout=15), "the worker runs the audit sequencer"
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=20)
    with factory() as session:
        session.execute(delete(JobRun).where(JobRun.worker == holder))
        session.commit()
        assert session.get(OutboxMessage, message.id).state is OutboxState.SENT
    assert process.returncode == 0, err
    assert "canaux configurés : email" in out
    assert "arrêté" in out
    assert lease_holder(factory, "scheduler") is None  # given up at once, not left to expire


# --- R9 ------------------------------------------------------------------------------------------------


@pytest.mark.concurrency
def test_r9_gunicorn_workers_run_no_job(committed, database_url):
    factory, _ = committed
    with factory() as session:
        session.execute(delete(SchedulerLease).where(SchedulerLease.name == "scheduler"))
        session.commit()
        runs_before = session.scalar(select(func.count()).select_from(JobRun))
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}", "hub:create_app()"],
        cwd=PROJECT_ROOT,
        env=child_env(database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def healthy():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        assert wait_for(healthy, timeout=20, interval=0.2)
        for _ in range(20):  # reach both workers
            assert healthy()
        time.sleep(3)
        with factory() as session:
            assert session.scalars(select(SchedulerLease.name)).all() == []
            assert session.scalar(select(func.count()).select_from(JobRun)) == runs_before
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=20)
