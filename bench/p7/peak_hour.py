"""P7: the national peak hour replayed with locust against one web host as deployed + PostgreSQL + the hub worker.

The territory is scaled out: `--cpts` copies of a CPTS shaped like the demo's assisted-teleconsultation team (a
coordinator, a cardiologist with a weekly program, the patients' IDEL and a second IDEL, consenting and eligible
patients with their médecin traitant, all with secure mailboxes). One teleconsultation is 20 requests (see
bench/p7/locustfile.py) with think times of 0.5–1.5 s. The offered load is stepped as multiples of the national
peak hour (~100 requests/s for ~800 CPTS, issue 17) until p95 ≥ 200 ms or an error appears; the script prints the
highest multiple sustained with p95 < 200 ms and zero errors (the percentiles over the requests started once every
user runs, where the rate is measured; the errors over the whole step; the users start over one teleconsultation's
length, `--spawn`, so that they are spread over its phases), then checks that nothing is double-booked, that
every signed report's deliveries have exactly one outbox message each (none lost, none twice), and that the
audit chain verifies.

    make bench-p7                                  # installs the `bench` extra (locust), then runs this
    .venv/bin/python bench/p7/peak_hour.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_p7
    # options: --steps 0.05,0.1,0.2,0.3,0.5,1,2,5  --seconds 40  --spawn 21  --instances 2  --threads 4  --cpts 40
    #          --locust PATH  --direct [--workers 2]  --keep DIR (locust's CSVs and cpu.csv: both a line a second)

Each step also prints each process kind's CPU per request once every user runs (gunicorn, PostgreSQL, the worker,
locust, HAProxy, the rest, the kernel's unaccounted time) and the cores' idle share (bench/p7/cpu.py): where the
time goes when a step is not sustained.

The layout is one web host of docs/deployment.md on this machine's two cores: HAProxy (deploy/haproxy.cfg) in front
of `--instances` gunicorn processes, each started as its cpts-hub-web@<port> unit starts it (deploy/gunicorn_conf.py:
1 process × HUB_WEB_THREADS), locust sending to HAProxy, and the hub worker at its unit's Nice=. deploy/haproxy.cfg
names four servers, two hosts × two processes; this machine is one host, so the proxy runs a copy of the deployed
file whose `server` lines are this host's instances only, every other line (balance, maxconn per server, retries,
timeouts, checks) as deployed (bench/p7/layout.py says why absent rather than down). The figure is then one host's;
the second host of the deployment adds its own. HAProxy, like PostgreSQL and locust, shares the cores here.
`--direct` runs the layout of the figures before 2026-12-04 instead (one gunicorn of `--workers` processes, locust
straight at it), for comparison with them. The layout that ran is printed at the start and at the end.

PostgreSQL only (the deployment the figure is about). The script drops and recreates the `public` schema of the
database it is given: never point it at a database you care about.
"""

import argparse
import csv
import datetime as dt
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select, text  # noqa: E402

from bench.common import (  # noqa: E402 (needs the repository on sys.path)
    HOST,
    free_port,
    prepare_postgresql,
)
from bench.p7.cpu import CpuSampler  # noqa: E402
from bench.p7.layout import (  # noqa: E402
    Process,
    WebHost,
    cpu_priority,
    ensure_haproxy,
    gunicorn_options,
    wait_healthy,
    worker_command,
)
from connectors.email import message_token  # noqa: E402
from hub import audit, migrate  # noqa: E402
from hub.config import DEFAULTS  # noqa: E402
from hub.db import make_engine, make_session_factory, session_scope, utcnow  # noqa: E402
from hub.models import (  # noqa: E402
    Delivery,
    OutboxMessage,
    OutboxState,
    Profession,
    Report,
    Role,
    awaiting_rendering,
)
from hub.services import accounts, calendar_feeds, outbox_messages  # noqa: E402
from scheduling.slots import generate_slots  # noqa: E402
from tests import factories  # noqa: E402
from tests.servers import SmtpServer  # noqa: E402

NATIONAL_PEAK = 100.0  # requests/s, all ~800 CPTS at the peak hour (issue 17)
REQUESTS_PER_TELECONSULTATION = 20
THINK_MEAN = 1.0  # seconds, the mean of the locustfile's 0.5–1.5 s
P95_LIMIT_MS = 200.0
# A teleconsultation's mean length: 21 thinks for 20 requests. Users spawned within a few seconds stay in step for
# most of a step (21 random thinks spread a teleconsultation by ±1.3 s only): every coordinator books at once, then
# every specialist signs at once, waves no peak hour of ~800 independent teams has. Spawned over one teleconsultation
# instead, they are spread over its phases once all run (bench/README.md, tenth pass).
SPAWN_SECONDS = THINK_MEAN * (REQUESTS_PER_TELECONSULTATION + 1)
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_p7"
PATIENTS_PER_CPTS = 6
SPACING = dt.timedelta(minutes=90)  # past sessions: the IDEL is held 20 min before and 25 min after a 15-min slot
PARIS = ZoneInfo(DEFAULTS["TIMEZONE"])  # the zone the hub runs in unless configured otherwise


# --------------------------------------------------------------------------------------------------------------
# Territory and work


def seed_teams(url: str, count: int, signer) -> tuple[dict, dict[int, dict]]:
    """The CPTS copies with their people, tokens, feeds and page sessions; returns the locust `teams` map and,
    per CPTS id, the ids the work items are built from."""
    engine = make_engine(url)
    teams: dict[str, dict] = {}
    ids: dict[int, dict] = {}
    try:
        migrate.upgrade(engine)
        with session_scope(make_session_factory(engine)) as session:
            for index in range(count):
                cpts = factories.cpts(session, f"CPTS P7 {index:03d}")
                t = factories.territory(session, cpts)
                # One session a day at 14:00 (instead of the factory's three on Mondays) so that each booking
                # has its own day: the IDEL, held 20 min before and 25 min after, is never asked twice at once.
                today = dt.datetime.now(PARIS).date()
                t.program.rrule = "FREQ=DAILY"
                t.program.slot_count = 1
                t.program.valid_from = today
                t.program.start_local = dt.datetime.combine(today, dt.time(14, 0))
                t.program.horizon_weeks = 52
                generate_slots(session, t.program, now=dt.datetime.now(dt.UTC))
                t.cardiologist.mssante_address = f"cardio.{index}@ch-perigueux.mssante.fr"
                specialist = factories.user(session, cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
                patients = [t.patient]
                gp = factories.professional(
                    session, cpts, Profession.GENERAL_PRACTITIONER, mssante_address=f"gp.{index}@cabinet.mssante.fr"
                )
                t.patient.attending_gp_id = gp.id
                for _ in range(PATIENTS_PER_CPTS - 1):
                    patient = factories.consenting_patient(
                        session, cpts, recorded_by=t.coordinator, commune_insee="24571", attending_gp_id=gp.id
                    )
                    factories.in_care_team(session, patient, t.idel)
                    patients.append(patient)
                _feed, feed_token = calendar_feeds.create_feed(session, t.idel_user, t.idel)
                teams[str(cpts.id)] = {
                    "program_id": t.program.id,
                    "coordinator": accounts.create_api_token(session, t.coordinator, name="P7")[1],
                    "idel": accounts.create_api_token(session, t.idel_user, name="P7")[1],
                    "specialist": accounts.create_api_token(session, specialist, name="P7")[1],
                    "feed": feed_token,
                    "coordinator_cookie": signer(accounts.start_session(session, t.coordinator)),
                    "idel_cookie": signer(accounts.start_session(session, t.idel_user)),
                }
                ids[cpts.id] = {
                    "cpts": cpts.id,
                    "program": t.program.id,
                    "coordinator": t.coordinator.id,
                    "idel": t.idel.id,
                    "idel_user": t.idel_user.id,
                    "patients": [p.id for p in patients],
                }
        return teams, ids
    finally:
        engine.dispose()


class Work:
    """Hands out, per step, future slots to book and done sessions to report on, spread over the CPTS."""

    def __init__(self, url: str, ids: dict[int, dict]):
        self.url = url
        self.ids = ids
        self.order = list(ids)
        order = self.order
        now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
        self.slots = {cpts_id: self._future_slots(url, ids[cpts_id]["program"], now) for cpts_id in order}
        self.next_past = {cpts_id: now - dt.timedelta(days=1) for cpts_id in order}
        self.turn = 0

    def make(self, count: int) -> list[dict]:
        engine = make_engine(self.url)
        items = []
        try:
            with session_scope(make_session_factory(engine)) as session:
                territories = {}
                for _ in range(count):
                    cpts_id = self.order[self.turn % len(self.order)]
                    self.turn += 1
                    if cpts_id not in territories:
                        territories[cpts_id] = self._territory(session, self.ids[cpts_id])
                    t, patients = territories[cpts_id]
                    past = self.next_past[cpts_id]
                    self.next_past[cpts_id] -= SPACING
                    n = self.turn // len(self.order)
                    slot_id, future = self.slots[cpts_id].pop(0)
                    done_patient = patients[(n + 1) % len(patients)]
                    done = factories.visit(
                        session,
                        t,
                        past,
                        state=factories.AppointmentState.DONE,
                        patient_row=done_patient,
                        now=past - dt.timedelta(days=2),
                    )
                    items.append(
                        {
                            "cpts": cpts_id,
                            "slot_id": slot_id,
                            "slot_day": future.astimezone(PARIS).date().isoformat(),
                            "patient_id": patients[n % len(patients)].id,
                            "done_id": done.id,
                            "done_patient_id": done_patient.id,
                        }
                    )
        finally:
            engine.dispose()
        return items

    @staticmethod
    def _future_slots(url: str, program_id: int, now: dt.datetime) -> list[tuple[int, dt.datetime]]:
        """The program's generated slots from tomorrow on, earliest first."""
        from hub.models import Slot

        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    select(Slot.id, Slot.starts_at)
                    .where(Slot.program_id == program_id, Slot.starts_at > now + dt.timedelta(days=1))
                    .order_by(Slot.starts_at)
                )
                return [(row.id, row.starts_at) for row in rows]
        finally:
            engine.dispose()

    @staticmethod
    def _territory(session, ids: dict):
        from hub.models import Organisation, Patient, Professional, SessionProgram, User

        program = session.get(SessionProgram, ids["program"])
        t = factories.Territory(
            cpts=session.get(Organisation, ids["cpts"]),
            coordinator=session.get(User, ids["coordinator"]),
            cardiologist=program.performer,
            idel=session.get(Professional, ids["idel"]),
            idel_user=session.get(User, ids["idel_user"]),
            other_idel=None,
            other_idel_user=None,
            patient=session.get(Patient, ids["patients"][0]),
            program=program,
        )
        return t, [session.get(Patient, i) for i in ids["patients"]]


# --------------------------------------------------------------------------------------------------------------
# Processes: gunicorn, the worker, locust


# The worker's audit sequencer checkpoints here; the checks after the load verify the chain against it.
AUDIT_CHECKPOINTS = Path(tempfile.gettempdir()) / f"bench-p7-audit-checkpoints-{os.getpid()}.jsonl"


def hub_env(url: str, secret: str, smtp_port: int) -> dict:
    """Production settings; e-mail through the local SMTP sink (plain SMTP: a local relay). MSSanté is not
    configured, so the reports' deliveries wait in the outbox, where the checks count them."""
    env = dict(os.environ)
    env.update(HUB_ENV="production", HUB_SECRET_KEY=secret, HUB_DATABASE_URL=url, FLASK_APP="wsgi")
    env.update(HUB_AUDIT_KEY=secret, HUB_AUDIT_CHECKPOINT_FILE=str(AUDIT_CHECKPOINTS))
    env.update(HUB_SMTP_HOST=HOST, HUB_SMTP_PORT=str(smtp_port), HUB_SMTP_FROM="hub@cpts-p7.example.org")
    env["HUB_SMTP_STARTTLS"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def start_gunicorn(env: dict, options: list[str], workdir: Path) -> tuple[Process, int]:
    """gunicorn serving wsgi:app with these options (workers, worker class), on a free port of 127.0.0.1."""
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    server = Process("gunicorn", [str(gunicorn), *options, "-b", f"{HOST}:{port}", "wsgi:app"], env, workdir)
    wait_healthy(port, server, "gunicorn")
    return server, port


@dataclass
class Step:
    multiple: float
    users: int
    requests: int
    failures: int
    rate: float
    p50: float
    p95: float
    p99: float
    whole_p95: float  # over the whole step, the users' spawning included (locust's summary)
    rows: list[dict]
    failure_lines: list[str]
    unused: int
    steady: "Steady | None" = None
    cpu: str | None = None  # each process kind's CPU per request over `steady` (bench/p7/cpu.py)

    @property
    def sustained(self) -> bool:
        return self.failures == 0 and self.requests > 0 and self.p95 < P95_LIMIT_MS


def run_step(args, multiple: float, port: int, teams: dict, work: Work, workdir: Path, seconds: float) -> Step:
    offered = multiple * NATIONAL_PEAK
    # A user thinks after each of a teleconsultation's requests and once more before the next one: 21 thinks for 20
    # requests. Fewer users offered ~5 % less than the step's name said.
    users = max(1, round(offered * THINK_MEAN * (REQUESTS_PER_TELECONSULTATION + 1) / REQUESTS_PER_TELECONSULTATION))
    spawn_seconds = args.spawn
    per_second = offered / REQUESTS_PER_TELECONSULTATION
    needed = math.ceil(per_second * (seconds + spawn_seconds) * 1.3) + users
    began = time.monotonic()
    items = work.make(needed)
    print(f"  seeded {len(items)} bookable slots and done sessions in {time.monotonic() - began:.1f} s", flush=True)
    work_path = workdir / f"work-{multiple:g}-{len(items)}.json"
    work_path.write_text(json.dumps({"teams": teams, "items": items}), encoding="utf-8")
    prefix = workdir / f"step-{multiple:g}-{len(items)}"
    env = dict(os.environ)
    env["P7_WORK"] = str(work_path)
    times_path = Path(f"{prefix}_times.txt")
    env["P7_TIMES"] = str(times_path)
    command = [
        args.locust,
        "-f",
        str(Path(__file__).with_name("locustfile.py")),
        "--headless",
        "--only-summary",
        "-H",
        f"http://{HOST}:{port}",
        "-u",
        str(users),
        "-r",
        f"{users / spawn_seconds:.2f}",
        "-t",
        f"{seconds + spawn_seconds:.0f}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(prefix),
    ]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=600)
    stats_path = Path(f"{prefix}_stats.csv")
    if not stats_path.exists():
        raise RuntimeError(f"locust wrote no statistics (exit {finished.returncode}):\n{finished.stderr[-3000:]}")
    with open(stats_path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    total = next(row for row in rows if row["Name"] == "Aggregated")
    failure_lines = []
    failures_path = Path(f"{prefix}_failures.csv")
    if failures_path.exists():
        with open(failures_path, encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                failure_lines.append(f"{row['Occurrences']}× {row['Method']} {row['Name']}: {row['Error'][:160]}")
    used = sum(int(row["Request Count"]) for row in rows if row["Name"] == "POST /api/v1/appointments")
    steady = steady_part(Path(f"{prefix}_stats_history.csv"), users)
    # The percentiles over the requests started once every user runs, where the rate is measured too; the errors
    # over the whole step.
    percentiles = steady_percentiles(times_path, steady) if steady else None
    p50, p95, p99 = percentiles or (float(total["50%"]), float(total["95%"]), float(total["99%"]))
    return Step(
        multiple=multiple,
        users=users,
        requests=int(total["Request Count"]),
        failures=int(total["Failure Count"]),
        rate=steady.rate if steady else float(total["Requests/s"]),
        p50=p50,
        p95=p95,
        p99=p99,
        whole_p95=float(total["95%"]),
        rows=[row for row in rows if row["Name"] != "Aggregated"],
        failure_lines=failure_lines,
        unused=len(items) - used,
        steady=steady,
    )


@dataclass
class Steady:
    """The part of a step where every user runs (locust's clock, time.time()) and the requests served in it."""

    began: float
    ended: float
    requests: int

    @property
    def rate(self) -> float:
        return self.requests / (self.ended - self.began)


def steady_part(history: Path, users: int) -> Steady | None:
    """The step once every user runs (locust's history, a line a second), not the whole step: its first seconds
    ramp the users up and its average counts them at a fraction of the load. None when the history is too short
    to tell."""
    if not history.exists():
        return None
    with open(history, encoding="utf-8") as handle:
        full = [
            (float(row["Timestamp"]), int(row["Total Request Count"]))
            for row in csv.DictReader(handle)
            if row["Name"] == "Aggregated" and int(row["User Count"]) == users
        ]
    if len(full) < 2 or full[-1][0] - full[0][0] < 10:
        return None
    (began, before), (ended, after) = full[0], full[-1]
    return Steady(began, ended, after - before)


def steady_percentiles(times: Path, steady: Steady) -> tuple[float, float, float] | None:
    """p50, p95 and p99 (ms, nearest rank) of the requests started in the steady part; None without the locustfile's
    times."""
    if not times.exists():
        return None
    took = sorted(
        float(fields[1])
        for fields in map(str.split, times.read_text(encoding="utf-8").splitlines())
        if steady.began <= float(fields[0]) < steady.ended
    )
    if not took:
        return None
    return tuple(took[min(len(took) - 1, math.ceil(q * len(took)) - 1)] for q in (0.50, 0.95, 0.99))


def print_step(step: Step) -> None:
    verdict = "sustained" if step.sustained else "NOT sustained"
    print(
        f"  {step.multiple:>5g}× ({step.multiple * NATIONAL_PEAK:6.1f} req/s offered, {step.users} users): "
        f"{step.requests} requests, {step.rate:6.1f} req/s once all users run, p50 {step.p50:.0f} ms, "
        f"p95 {step.p95:.0f} ms, p99 {step.p99:.0f} ms (p95 over the whole step, spawning included: "
        f"{step.whole_p95:.0f} ms), {step.failures} errors → {verdict}",
        flush=True,
    )
    if step.cpu:
        print(f"    CPU per request once every user runs: {step.cpu}", flush=True)
    if step.unused <= 0:
        print("  warning: the step used up its work; some users idled", flush=True)
    for line in step.failure_lines[:8]:
        print(f"    {line}", flush=True)


def print_breakdown(step: Step) -> None:
    """Where the time goes at the last step: each request kind's share of the total response time."""
    total = sum(float(r["Average Response Time"]) * int(r["Request Count"]) for r in step.rows) or 1.0
    print(f"\nwhere the time goes at {step.multiple:g}× (share of the summed response time):")
    ranked = sorted(step.rows, key=lambda r: -float(r["Average Response Time"]) * int(r["Request Count"]))
    for row in ranked:
        share = float(row["Average Response Time"]) * int(row["Request Count"]) / total
        print(
            f"  {row['Name']:<28} {int(row['Request Count']):>6}  mean {float(row['Average Response Time']):6.0f} ms"
            f"  p95 {row['95%']:>5} ms  {share:6.1%}"
        )


# --------------------------------------------------------------------------------------------------------------
# The checks after the load


def wait_for_emails(url: str, stalled: float = 60.0, longest: float = 900.0) -> float:
    """Give the worker time to render the documents of the reports the last step signed (their deliveries are
    queued then) and to send the e-mails it queued (it polls the outbox): while it makes progress, up to `longest`
    seconds, or until it has sent nothing for `stalled` seconds. Progress is e-mails sent, not the backlog
    shrinking: a rendering queues the e-mails of its report, so the backlog can stand still while the worker
    works. A step beyond what the box sustains leaves the worker (below the web processes for the CPU) a backlog
    of minutes: late is not lost. Returns the seconds the backlog took to clear (or the time waited)."""
    engine = make_engine(url)
    started = time.monotonic()
    is_sent = OutboxMessage.state == OutboxState.SENT
    emails = select(func.count().filter(~is_sent), func.count().filter(is_sent)).where(OutboxMessage.channel == "email")
    unrendered = select(func.count()).select_from(Report).where(awaiting_rendering())
    try:
        most_sent, last_progress = -1, started
        while time.monotonic() - started < longest and time.monotonic() - last_progress < stalled:
            with engine.connect() as connection:
                unsent, sent = connection.execute(emails).one()
                waiting = unsent + connection.scalar(unrendered)
            if not waiting:
                break
            if sent > most_sent:
                most_sent, last_progress = sent, time.monotonic()
            time.sleep(1)
    finally:
        engine.dispose()
    return time.monotonic() - started


def analyse(url: str) -> None:
    """VACUUM and ANALYZE the database, as autovacuum would have in production before the peak hour (this machine's
    cluster runs with autovacuum off). Without statistics PostgreSQL plans on guesses, and a statement whose plan
    depends on them (« Mes visites »' lists: bench/README.md) would be measured on the wrong plan; without the
    VACUUM the catalogue bloats run after run (each run builds the schema again: 38,000 dead rows in pg_attribute
    for 4,800 live after ~17 runs), and a fresh database gave the best of the later runs (bench/README.md, eighth
    pass)."""
    engine = make_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()


def worker_backlog(url: str) -> str:
    """What the worker has left when a step ends: signed reports not yet rendered, and the outbox's messages due (how
    many, how long the oldest has waited). A step the web processes sustain can still leave the worker behind: its
    work is late, not lost, and this line says by how much."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            unrendered = session.scalar(select(func.count()).select_from(Report).where(awaiting_rendering()))
            due = outbox_messages.backlog(session, None, now=utcnow())
    finally:
        engine.dispose()
    return (
        f"signed reports awaiting rendering {unrendered}; outbox messages due {due.waiting}, "
        f"the oldest waiting {due.age.total_seconds():.0f} s"
    )


def check_emails(session, received) -> list[str]:
    """Every e-mail the outbox holds arrived at the SMTP sink exactly once (its Message-ID is stable per message)."""
    keys = list(session.scalars(select(OutboxMessage.idempotency_key).where(OutboxMessage.channel == "email")))
    by_token = {}
    for message_id, count in received.items():
        by_token[message_id.strip("<>").split("@")[0]] = count
    lost = sum(1 for key in keys if message_token(key) not in by_token)
    twice = sum(1 for count in received.values() if count > 1)
    foreign = len(set(by_token) - {message_token(key) for key in keys})
    print(
        f"  e-mails in the outbox {len(keys)}; received by the SMTP sink {sum(received.values())}: "
        f"lost {lost}, received twice {twice}, unknown {foreign}"
    )
    problems = []
    if lost or twice or foreign:
        problems.append(f"e-mails: {lost} lost, {twice} received twice, {foreign} unknown")
    return problems


def check_integrity(url: str, signed: int, in_flight: int, received, *, audit_key: bytes | None) -> list[str]:
    """Nothing double-booked, every signed report's deliveries each with one outbox message that is not lost
    (dead) nor doubled, every e-mail received once, and the audit chain intact (unless `audit_key` is None: the
    caller verifies it its own way). Returns the problems found."""
    problems = []
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            overlaps = connection.scalar(
                text(
                    "SELECT count(*) FROM allocations a JOIN allocations b ON a.resource_kind = b.resource_kind"
                    " AND a.resource_id = b.resource_id AND a.id < b.id AND a.starts_at < b.ends_at"
                    " AND b.starts_at < a.ends_at"
                    " JOIN appointments x ON x.id = a.appointment_id JOIN appointments y ON y.id = b.appointment_id"
                    " WHERE x.state NOT IN ('cancelled', 'declined') AND y.state NOT IN ('cancelled', 'declined')"
                )
            )
            per_slot = connection.scalar(
                text(
                    "SELECT count(*) FROM (SELECT slot_id FROM appointments WHERE state NOT IN"
                    " ('cancelled', 'declined') GROUP BY slot_id HAVING count(*) > 1) doubled"
                )
            )
            print(f"  overlapping allocations of one resource: {overlaps}; slots booked twice: {per_slot}")
            if overlaps or per_slot:
                problems.append(f"double booking: {overlaps} overlapping allocations, {per_slot} slots booked twice")
        factory = make_session_factory(engine)
        # The worker chains every few seconds: chain what the last requests wrote, then verify.
        breaks = (
            audit.seal_and_verify(factory, key=audit_key, checkpoint_file=AUDIT_CHECKPOINTS)[1].breaks
            if audit_key is not None
            else None
        )
        with session_scope(factory) as session:
            reports = session.scalar(select(func.count()).select_from(Report).where(Report.signed_at.is_not(None)))
            deliveries = session.scalar(select(func.count()).select_from(Delivery))
            messages = session.scalar(
                select(func.count(func.distinct(Delivery.outbox_message_id))).join(
                    OutboxMessage, OutboxMessage.id == Delivery.outbox_message_id
                )
            )
            keys = session.execute(select(func.count(), func.count(func.distinct(OutboxMessage.idempotency_key)))).one()
            states = dict(
                session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)).all()
            )
            without = session.scalar(
                select(func.count())
                .select_from(Report)
                .where(
                    Report.signed_at.is_not(None),
                    ~Report.id.in_(select(Delivery.report_id).where(Delivery.report_id.is_not(None))),
                )
            )
            print(
                f"  signed reports {reports} (answered 200: {signed}; cut off at a step's end: ≤ {in_flight}); "
                f"deliveries {deliveries}, with their "
                f"outbox message {messages}; signed reports without a delivery {without}"
            )
            shown = dict(sorted((str(k), v) for k, v in states.items()))
            print(f"  outbox messages {keys[0]}, distinct idempotency keys {keys[1]}; states {shown}")
            # locust stops its users mid-teleconsultation at the end of a step: a signature the server committed
            # may have had its answer cut off, so at most one extra signature per user, never one fewer.
            if not signed <= reports <= signed + in_flight:
                problems.append(f"signed reports {reports}, signatures answered 200 {signed}, users {in_flight}")
            if messages != deliveries or without:
                problems.append(
                    f"lost messages: {deliveries - messages} deliveries without a message, "
                    f"{without} reports without deliveries"
                )
            if keys[0] != keys[1]:
                problems.append(f"messages doubled: {keys[0] - keys[1]}")
            if states.get(OutboxState.DEAD, 0):
                problems.append("dead outbox messages")
            problems += check_emails(session, received)
            if breaks is not None:
                print(f"  audit chain: {'verifies' if not breaks else f'{len(breaks)} breaks'}")
            if breaks:
                problems.append(f"audit chain: {breaks[:3]}")
    finally:
        engine.dispose()
    return problems


# --------------------------------------------------------------------------------------------------------------


class DirectServer:
    """The layout of the figures before 2026-12-04: one gunicorn of several worker processes, locust straight at it."""

    def __init__(self, env: dict, workdir: Path, *, workers: int, threads: int):
        self.server, self.port = start_gunicorn(env, gunicorn_options(workers, threads), workdir)

    def log_tails(self) -> str:
        return f"gunicorn log:\n{self.server.log_tail()}"

    def stop(self) -> None:
        self.server.stop()


def start_web(args, env: dict, workdir: Path, haproxy: str | None) -> tuple[WebHost | DirectServer, int, str]:
    """The web processes of the layout asked for: (them, the port locust sends to, a line saying which layout)."""
    if haproxy is None:
        direct = DirectServer(env, workdir, workers=args.workers, threads=args.threads)
        return (
            direct,
            direct.port,
            (
                f"direct (one gunicorn of {args.workers} processes × {args.threads} threads on {HOST}:{direct.port}, "
                "no HAProxy: the layout before 2026-12-04)"
            ),
        )
    host = WebHost(env, workdir, instances=args.instances, threads=args.threads, haproxy=haproxy)
    return (
        host,
        host.proxy_port,
        (
            f"deployed, one web host (HAProxy on {HOST}:{host.proxy_port}, deploy/haproxy.cfg with one server per "
            f"process → {args.instances} gunicorn instances × 1 process × {args.threads} threads, worker class "
            f"{os.environ.get('HUB_WEB_WORKER_CLASS', 'of deploy/gunicorn_conf.py')})"
        ),
    )


def cookie_signer(url: str, secret: str):
    """Signs a page session (auth token + sid) the way the hub's app does, so locust can GET the pages."""
    os.environ.update(HUB_ENV="production", HUB_SECRET_KEY=secret, HUB_AUDIT_KEY=secret, HUB_DATABASE_URL=url)
    from hub import create_app

    app = create_app()
    serializer = app.session_interface.get_signing_serializer(app)
    name = app.config["SESSION_COOKIE_NAME"]

    def sign(token: str) -> str:
        return f"{name}={serializer.dumps({'auth_token': token, 'sid': secrets.token_urlsafe(16)})}"

    return sign


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--steps", default="0.05,0.1,0.2,0.3,0.5,1,2,5", help="multiples of the national peak")
    parser.add_argument("--seconds", type=float, default=40.0, help="measured seconds per step (default 40)")
    parser.add_argument("--warmup", type=float, default=15.0, help="warm-up seconds, not counted (default 15)")
    parser.add_argument(
        "--spawn",
        type=float,
        default=SPAWN_SECONDS,
        help=f"seconds over which a step's users start, before its measured seconds (default {SPAWN_SECONDS:g}: one "
        "teleconsultation; 5 before 2026-12-05's tenth pass)",
    )
    parser.add_argument(
        "--instances", type=int, default=2, help="gunicorn instances behind HAProxy, one per core (default 2)"
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn process (default 4)")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="the layout of the figures before 2026-12-04: one gunicorn of --workers processes, no HAProxy",
    )
    parser.add_argument("--workers", type=int, default=2, help="with --direct: gunicorn worker processes (default 2)")
    parser.add_argument("--cpts", type=int, default=40, help="CPTS copies seeded (default 40)")
    parser.add_argument("--locust", default=shutil.which("locust") or str(Path(sys.executable).parent / "locust"))
    parser.add_argument(
        "--keep", help="a directory for locust's CSVs (its history: a line a second) and the CPU by process (cpu.csv)"
    )
    args = parser.parse_args(argv)
    multiples = [float(m) for m in args.steps.split(",")]

    haproxy = None if args.direct else ensure_haproxy()
    if not args.direct and haproxy is None:
        print("haproxy is not installed and cannot be (apt-get install haproxy as root); --direct runs without it")
        return 2
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    secret = secrets.token_urlsafe(48)
    prepare_postgresql(args.pg_url)
    signer = cookie_signer(args.pg_url, secret)
    teams, ids = seed_teams(args.pg_url, args.cpts, signer)
    print(f"seeded {args.cpts} CPTS in {time.monotonic() - started:.0f} s; load average {load_before:.2f}", flush=True)
    work = Work(args.pg_url, ids)
    analyse(args.pg_url)
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="bench-p7-") as tmp, SmtpServer() as smtp, CpuSampler(args.pg_url) as cpu:
        workdir = Path(tmp)
        env = hub_env(args.pg_url, secret, smtp.port)
        web, port, layout = start_web(args, env, workdir, haproxy)
        worker = Process("worker", worker_command(), env, workdir)
        try:
            print(f"layout: {layout}; the hub worker ({cpu_priority(worker.process.pid)}), locust {args.locust}")
            # Warm-up at the first step's load, not counted: each gunicorn worker's first requests compile the
            # templates and open its connections.
            warm: Step = run_step(args, multiples[0], port, teams, work, workdir, args.warmup)
            print(f"  warm-up: {warm.requests} requests, {warm.failures} errors (not counted)", flush=True)
            if warm.failures:
                print("\n".join(f"    {line}" for line in warm.failure_lines[:8]), flush=True)
            for multiple in multiples:
                step = run_step(args, multiple, port, teams, work, workdir, args.seconds)
                if step.steady:
                    step.cpu = cpu.per_request(step.steady.began, step.steady.ended, step.steady.requests)
                steps.append(step)
                print_step(step)
                print(f"  the worker at the step's end: {worker_backlog(args.pg_url)}", flush=True)
                if not step.sustained:
                    break
            if worker.process.poll() is not None:
                raise RuntimeError(f"the hub worker stopped:\n{worker.log_tail()}")
            if isinstance(web, WebHost):
                print(f"  requests per gunicorn instance (HAProxy's log): {web.served()}", flush=True)
            caught_up = wait_for_emails(args.pg_url)
            print(f"  the worker's backlog (renderings, e-mails) after the load: {caught_up:.0f} s", flush=True)
        except Exception:
            print(f"{web.log_tails()}\nworker log:\n{worker.log_tail()}", file=sys.stderr)
            raise
        finally:
            web.stop()
            worker.stop()
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                for kept in workdir.glob("step-*.csv"):
                    shutil.copy(kept, args.keep)
                cpu.write_csv(Path(args.keep) / "cpu.csv")
        received = smtp.message_ids()
    print_breakdown(steps[-1])
    sustained = [s for s in steps if s.sustained]
    best = max(sustained, key=lambda s: s.multiple) if sustained else None
    offered = best.multiple if best else 0.0
    achieved = best.rate / NATIONAL_PEAK if best else 0.0
    print(
        f"\nP7: highest sustained multiple of the national peak (~{NATIONAL_PEAK:.0f} req/s) with p95 < "
        f"{P95_LIMIT_MS:.0f} ms and zero errors: {offered:g}× offered, {achieved:.2f}× achieved "
        f"(goal ≥ 5× achieved: {'met' if achieved >= 5 else 'MISSED'})"
    )
    # The warm-up's signatures are in the database too.
    signed = sum(
        int(row["Request Count"]) - int(row["Failure Count"])
        for step in [warm, *steps]
        for row in step.rows
        if row["Name"] == "POST sign"
    )
    print("checks after the load:")
    in_flight = sum(step.users for step in [warm, *steps])
    problems = check_integrity(args.pg_url, signed, in_flight, received, audit_key=secret.encode())
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    print(
        f"layout: {layout}; run {time.monotonic() - started:.0f} s, {dt.date.today().isoformat()}, "  # noqa: DTZ011
        f"{os.cpu_count()} cores; "
        f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f} (a shared machine skews the figures)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: gunicorn, the worker and locust stopped", file=sys.stderr)
        sys.exit(130)
