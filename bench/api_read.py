"""P1: an authenticated, audited `GET /api/v1/patients/<id>` under gunicorn, against a bare Flask JSON route.

Both routes are served by the same gunicorn server and the same worker processes: a small WSGI dispatcher,
written at run time into a temporary directory, sends `/bare` to a bare Flask app and everything else to
`hub.create_app()`. Each measurement runs `--concurrency` client threads for `--seconds`, on 127.0.0.1 only.
gunicorn runs with a web node's settings (deploy/gunicorn_conf.py: threaded workers, kept connections); `--sync`
runs the sync workers of the measurements before 2026-12-04 instead.

    .venv/bin/python bench/api_read.py                       # SQLite and PostgreSQL, 10 s each
    .venv/bin/python bench/api_read.py --database sqlite --seconds 5

Goal (docs/guarantees.md, P1): patient reads reach at least 0.30 of the bare route's throughput. Every successful
read must leave exactly one audit row; the script checks it.
"""

import argparse
import datetime as dt
import http.client
import itertools
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402

from bench.common import HOST, REQUEST_TIMEOUT, free_port, get, prepare_postgresql  # noqa: E402 (repository on sys.path)
from bench.p7.layout import Process  # noqa: E402
from hub import migrate  # noqa: E402
from hub.db import make_engine, make_session_factory, session_scope  # noqa: E402
from hub.models import AuditEvent, Profession, Role  # noqa: E402
from hub.services import accounts  # noqa: E402
from tests import factories  # noqa: E402

GOAL = 0.30
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_hub"
PATIENTS = 500
WARMUP_SECONDS = 2.0
START_TIMEOUT = 60.0

BARE_MODULE = '''\
"""Written by bench/api_read.py: one WSGI app, /bare to a bare Flask app, the rest to the hub."""

from flask import Flask

from hub import create_app

hub_app = create_app()
bare = Flask("bare")


@bare.get("/bare")
def bare_route():
    return {"status": "ok"}


def app(environ, start_response):
    target = bare if environ.get("PATH_INFO") == "/bare" else hub_app
    return target(environ, start_response)
'''


# --------------------------------------------------------------------------------------------------------------
# Database


def seed(url: str, patients: int) -> tuple[list[int], str]:
    """Migrate, then one CPTS, its GP, a professional user linked to the GP, the GP's patients, a token."""
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        with session_scope(make_session_factory(engine)) as session:
            cpts = factories.cpts(session, "CPTS banc d'essai")
            gp = factories.professional(session, cpts, Profession.GENERAL_PRACTITIONER)
            user = factories.user(session, cpts, Role.PROFESSIONAL, professional_row=gp)
            ids = [factories.patient(session, cpts, attending_gp_id=gp.id).id for _ in range(patients)]
            _token, raw = accounts.create_api_token(session, user, name="bench P1")
        return ids, raw
    finally:
        engine.dispose()


def audit_count(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(AuditEvent))
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------------------
# Server


class Server:
    """gunicorn serving bench_bare:app; stopped with SIGTERM (then SIGKILL) whatever happens."""

    def __init__(self, url: str, options: list[str], workdir: Path):
        self.url = url
        self.options = options
        self.workdir = workdir
        self.port = free_port()
        self.process: Process | None = None

    def start(self) -> None:
        (self.workdir / "bench_bare.py").write_text(BARE_MODULE, encoding="utf-8")
        env = dict(os.environ)
        env.update(
            HUB_ENV="production",
            HUB_SECRET_KEY=secrets.token_urlsafe(48),
            HUB_AUDIT_KEY=secrets.token_urlsafe(48),
            HUB_AUDIT_CHECKPOINT_FILE=str(self.workdir / "audit-checkpoints.jsonl"),
            HUB_DATABASE_URL=self.url,
            PYTHONPATH=os.pathsep.join(p for p in (str(self.workdir), env.get("PYTHONPATH")) if p),
        )
        gunicorn = Path(sys.executable).parent / "gunicorn"
        command = [str(gunicorn), *self.options, "-b", f"{HOST}:{self.port}", "--chdir", str(REPO)]
        command.append("bench_bare:app")
        self.command = command
        self.process = Process(f"gunicorn-{self.port}", command, env, self.workdir)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with code {self.process.process.returncode}:\n{self.log_tail()}")
            try:
                status, _ = get(self.port, "/bare")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.process.log_tail() if self.process is not None else "(no log)"

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


# --------------------------------------------------------------------------------------------------------------
# Load


@dataclass
class Result:
    ok: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def run_load(port: int, paths, headers: dict, seconds: float, concurrency: int) -> Result:
    """`concurrency` threads, each on its own keep-alive connection (reopened when the server closes it),
    until `seconds` have passed; a request under way at the deadline is finished and counted."""
    result = Result()
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)
    deadline = 0.0

    def client() -> None:
        latencies: list[float] = []
        errors: Counter = Counter()
        connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
        start.wait()
        try:
            while time.perf_counter() < deadline:
                path = next(paths)
                began = time.perf_counter()
                try:
                    connection.request("GET", path, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    if response.will_close:
                        connection.close()
                except (OSError, http.client.HTTPException) as exc:
                    connection.close()
                    errors[type(exc).__name__] += 1
                    continue
                if response.status == 200:
                    latencies.append(time.perf_counter() - began)
                else:
                    errors[f"HTTP {response.status}"] += 1
        finally:
            connection.close()
            with lock:
                result.latencies.extend(latencies)
                result.errors.update(errors)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    result.elapsed = time.perf_counter() - began
    result.ok = len(result.latencies)
    return result


class Rotation:
    """The patient paths in turn, shared by the client threads (next() on itertools.count is atomic)."""

    def __init__(self, ids: list[int]):
        self.paths = [f"/api/v1/patients/{i}" for i in ids]
        self.counter = itertools.count()

    def __next__(self) -> str:
        return self.paths[next(self.counter) % len(self.paths)]


def constant(path: str):
    return itertools.repeat(path)


# --------------------------------------------------------------------------------------------------------------
# One database


@dataclass
class Measurement:
    database: str
    bare: Result
    patient: Result
    audit_rows: int

    @property
    def ratio(self) -> float:
        return self.patient.rate / self.bare.rate if self.bare.rate else 0.0

    @property
    def valid(self) -> bool:
        return not self.bare.errors and not self.patient.errors and self.audit_rows == self.patient.ok


def check_patient_read(port: int, patient_id: int, headers: dict) -> None:
    status, body = get(port, f"/api/v1/patients/{patient_id}", headers)
    if status != 200 or json.loads(body).get("id") != patient_id:
        raise RuntimeError(f"patient read check failed: HTTP {status} {body[:300]!r}")


def measure(database: str, url: str, args, workdir: Path) -> Measurement:
    print(f"\n=== {database}: {url}", flush=True)
    if database == "postgresql":
        prepare_postgresql(url)
    ids, raw_token = seed(url, PATIENTS)
    headers = {"Authorization": f"Bearer {raw_token}"}
    print(f"seeded {len(ids)} patients; starting gunicorn ({server_kind(args)})", flush=True)
    server = Server(url, gunicorn_options(args), workdir)
    try:
        server.start()
        print(f"  {' '.join(server.command)}", flush=True)
        check_patient_read(server.port, ids[0], headers)
        bare_path = constant("/bare")
        patient_paths = Rotation(ids)
        for paths, path_headers in ((bare_path, {}), (patient_paths, headers)):
            warm = run_load(server.port, paths, path_headers, WARMUP_SECONDS, args.concurrency)
            if warm.errors:
                print(f"  warm-up errors: {dict(warm.errors)}", flush=True)
        bare = run_load(server.port, bare_path, {}, args.seconds, args.concurrency)
        report_line("bare /bare", bare)
        before = audit_count(url)
        patient = run_load(server.port, patient_paths, headers, args.seconds, args.concurrency)
        audit_rows = audit_count(url) - before
        report_line("GET /api/v1/patients/<id>", patient)
    except Exception:
        print(f"gunicorn log:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        server.stop()
    result = Measurement(database, bare, patient, audit_rows)
    verdict = "meets" if result.ratio >= GOAL else "MISSES"
    print(f"  ratio {result.ratio:.3f} (goal ≥ {GOAL:.2f}): {verdict} the goal")
    match = "ok" if audit_rows == patient.ok else "MISMATCH (bug)"
    print(f"  audit rows written {audit_rows}, successful patient reads {patient.ok}: {match}", flush=True)
    return result


def gunicorn_options(args) -> list[str]:
    if args.sync:
        return ["-w", str(args.workers), "-k", "sync"]
    return ["-c", str(REPO / "deploy" / "gunicorn_conf.py"), "-w", str(args.workers), "--threads", str(args.threads)]


def server_kind(args) -> str:
    return f"{args.workers} sync workers" if args.sync else f"{args.workers} workers × {args.threads} threads"


def report_line(label: str, result: Result) -> None:
    errors = f", errors {result.error_count} {dict(result.errors)}" if result.errors else ", errors 0"
    print(
        f"  {label:<28} {result.ok:>7} ok in {result.elapsed:5.1f} s  {result.rate:8.1f} req/s  "
        f"p50 {result.percentile(0.50):6.1f}  p95 {result.percentile(0.95):6.1f}  "
        f"p99 {result.percentile(0.99):6.1f} ms{errors}",
        flush=True,
    )


def summary(results: list[Measurement], args) -> None:
    print(
        f"\nP1 summary ({dt.date.today().isoformat()}, {os.cpu_count()} cores, gunicorn {server_kind(args)}, "  # noqa: DTZ011
        f"{args.concurrency} client threads, {args.seconds:g} s per measurement)"
    )
    header = ("database", "bare req/s", "patient req/s", "ratio", "p95 ms", "goal", "verdict", "errors", "audit")
    rows = [header]
    for m in results:
        audit = f"{m.audit_rows}={m.patient.ok}" if m.audit_rows == m.patient.ok else f"{m.audit_rows}≠{m.patient.ok}"
        rows.append(
            (
                m.database,
                f"{m.bare.rate:.0f}",
                f"{m.patient.rate:.0f}",
                f"{m.ratio:.3f}",
                f"{m.patient.percentile(0.95):.1f}",
                f"≥ {GOAL:.2f}",
                "pass" if m.ratio >= GOAL else "fail",
                str(m.bare.error_count + m.patient.error_count),
                audit,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement (default 10)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    parser.add_argument("--sync", action="store_true", help="sync workers instead of a web node's threaded ones")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args(argv)
    databases = ("sqlite", "postgresql") if args.database == "both" else (args.database,)

    load_before = os.getloadavg()[0]
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="bench-p1-") as tmp:
        workdir = Path(tmp)
        for database in databases:
            url = f"sqlite:///{workdir / 'bench.sqlite3'}" if database == "sqlite" else args.pg_url
            results.append(measure(database, url, args, workdir))
    summary(results, args)
    print(f"load average (1 min) before the run: {load_before:.2f}; other processes on the machine skew the figures")
    return 0 if all(m.valid for m in results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: gunicorn stopped, nothing measured", file=sys.stderr)
        sys.exit(130)
