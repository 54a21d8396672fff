"""R15: two web nodes behind HAProxy, two workers and a private PostgreSQL 15 under the P7 load, with faults.

The deployment of docs/deployment.md on one machine: a PostgreSQL 15 cluster of its own (initdb into a temporary
directory, its own port, run as the `postgres` system user when started by root; the machine's PostgreSQL is never
touched), migrated and seeded with P7's territory (bench/p7/peak_hour.py); two web nodes of two gunicorn processes
each (one process per HAProxy server, as cpts-hub-web@<port>; deploy/gunicorn_conf.py) behind HAProxy with
deploy/haproxy.cfg; two `flask hub worker` processes at the CPU priority of their unit (one holds the scheduler
lease, one stands by); the local SMTP sink P7 uses. Then P7's locust workload (bench/p7/locustfile.py,
with its client retries on) runs at `--multiple` of the national peak for `--seconds` while this script

  - kills web node 1 (SIGKILL to both its gunicorn processes, masters and workers), and restarts it later;
  - kills the worker holding the scheduler lease (SIGKILL): the standby must take over within the lease;
  - restarts PostgreSQL (`pg_ctl restart -m fast`).

Then it checks and prints: no double booking; no lost or duplicated message (each outbox message of a signed
report present once, each e-mail received once by the sink); no scheduler job run twice (job_runs unique per job
and period, and the outbox's idempotency keys distinct); `flask hub audit verify` passes; every failed request
failed inside a fault window and was retried successfully by the client. Exit code 1 when a check fails.

    make fault-run                                   # about 8 minutes; needs root or a `postgres` user, haproxy
    .venv/bin/python bench/two_nodes/fault_run.py --multiple 1 --seconds 300

Not part of `make test`. HAProxy is installed with apt-get when missing and the script runs as root; otherwise
the run stops with a message saying so.
"""

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from bench.common import (  # noqa: E402 (needs the repository on sys.path)
    HOST,
    free_port,
    prepare_postgresql,
)
from bench.p7 import peak_hour as p7  # noqa: E402
from bench.p7.layout import (  # noqa: E402
    HAPROXY_CFG,
    START_TIMEOUT,
    Process,
    ensure_haproxy,
    gunicorn_options,
    start_haproxy,
    wait_healthy,
    worker_command,
)
from hub.db import make_engine  # noqa: E402
from tests.servers import SmtpServer  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
LEASE_SECONDS = 30  # the worker's default (HUB_WORKER_LEASE_SECONDS)
TAKE_OVER_LIMIT = LEASE_SECONDS * 1.25 + 5  # the lease, a renewal tick (a quarter of it) and a few seconds' slack
OUTBOX_LEASE_SECONDS = 30  # a message the killed leader had claimed is claimed again after this (default 300)
WINDOW_AFTER = 20.0  # seconds after a fault's end (node out of the proxy, database back) its errors may still show
# deploy/haproxy.cfg's servers: HUB_NODE1_A, HUB_NODE1_B, HUB_NODE2_A, HUB_NODE2_B, one gunicorn process each.
INSTANCES = ("A", "B")


# --------------------------------------------------------------------------------------------------------------
# The private PostgreSQL cluster


class Cluster:
    """A PostgreSQL 15 cluster in a temporary directory, on its own port; run as `postgres` when we are root
    (initdb refuses root)."""

    def __init__(self, port: int):
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="r15-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgresql.log"
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def create(self) -> None:
        self.run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        self.start()

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses={HOST} -c max_connections=200"
        self.run(str(PG_BIN / "pg_ctl"), action, "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, *extra)

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped, or never started
            self.run(str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/hub_r15"


# --------------------------------------------------------------------------------------------------------------
# The deployment: two nodes, the proxy, two workers


class Deployment:
    def __init__(self, env: dict, workdir: Path, *, threads: int, haproxy: str):
        self.env = env
        self.workdir = workdir
        self.threads = threads
        self.node_ports = [[free_port() for _ in INSTANCES] for _ in range(2)]
        self.proxy_port = free_port()
        self.nodes: list[list[Process]] = [[], []]
        self.workers: dict[str, Process] = {}
        self.haproxy = haproxy
        self.proxy: Process | None = None
        self.starts = 0

    def start_node(self, index: int) -> None:
        """The node's gunicorn processes, one per port, as its host's cpts-hub-web@<port> units."""
        self.starts += 1
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.nodes[index] = []
        for instance, port in zip(INSTANCES, self.node_ports[index], strict=True):
            command = [str(gunicorn), *gunicorn_options(1, self.threads), "-b", f"{HOST}:{port}", "wsgi:app"]
            name = f"web{index + 1}{instance.lower()}-{self.starts}"
            self.nodes[index].append(Process(name, command, self.env, self.workdir))
        for process, port in zip(self.nodes[index], self.node_ports[index], strict=True):
            wait_healthy(port, process, f"web node {index + 1}, {process.name}")

    def kill_node(self, index: int) -> None:
        """SIGKILL to each process group of the node: its gunicorn masters and workers die at once, as with the
        host."""
        for process in self.nodes[index]:
            os.killpg(process.process.pid, signal.SIGKILL)
        for process in self.nodes[index]:
            process.process.wait(timeout=10)

    def start_proxy(self) -> None:
        env = dict(self.env)
        for node, ports in enumerate(self.node_ports, start=1):
            env.update(
                {f"HUB_NODE{node}_{name}": f"{HOST}:{port}" for name, port in zip(INSTANCES, ports, strict=True)}
            )
        self.proxy = start_haproxy(
            self.haproxy, HAPROXY_CFG, env, self.workdir, bind_port=self.proxy_port, slots=self.threads
        )

    def start_worker(self, name: str) -> None:
        self.workers[name] = Process(name, worker_command(), self.env, self.workdir)

    def web_processes(self) -> list[Process]:
        return [process for node in self.nodes for process in node]

    def stop(self) -> None:
        for process in [*self.workers.values(), *self.web_processes(), *([self.proxy] if self.proxy else [])]:
            process.stop()


def lease_holder(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(
                text("SELECT holder FROM scheduler_leases WHERE name = 'scheduler' AND expires_at > now()")
            )
    except Exception:  # the database is restarting: nobody is known to hold it
        return None
    finally:
        engine.dispose()


def wait_for_leader(deployment: "Deployment", url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while worker_of(deployment, lease_holder(url)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("no worker took the scheduler lease")
        time.sleep(0.5)


def worker_of(deployment: Deployment, holder: str | None) -> str | None:
    """The worker process (by name) whose pid the lease's holder names (host:pid:random)."""
    if not holder:
        return None
    pid = int(holder.split(":")[1])
    return next((name for name, w in deployment.workers.items() if w.process.pid == pid), None)


# --------------------------------------------------------------------------------------------------------------
# The faults, while locust runs


@dataclass
class Window:
    fault: str
    start: float  # epoch seconds
    end: float = 0.0
    notes: list[str] = field(default_factory=list)

    def holds(self, moment: float) -> bool:
        return self.start - 1.0 <= moment <= self.end + WINDOW_AFTER


def wait_until(began: float, offset: float) -> None:
    time.sleep(max(0.0, began + offset - time.time()))


def inject_faults(deployment: Deployment, cluster: Cluster, url: str, began: float, seconds: float) -> list[Window]:
    """Each fault at its share of the run; returns the windows, each from the fault to its recovery."""
    windows = []

    wait_until(began, seconds * 0.20)
    window = Window("web node 1 killed (SIGKILL)", time.time())
    deployment.kill_node(0)
    window.end = time.time()
    windows.append(window)
    log(f"web node 1 killed at +{window.start - began:.0f} s")

    wait_until(began, seconds * 0.35)
    window = Window("web node 1 restarted", time.time())
    deployment.start_node(0)
    window.end = time.time()
    window.notes.append(f"healthy after {window.end - window.start:.1f} s")
    windows.append(window)
    log(f"web node 1 restarted at +{window.start - began:.0f} s, healthy after {window.end - window.start:.1f} s")

    wait_until(began, seconds * 0.45)
    holder = lease_holder(url)
    leader = worker_of(deployment, holder)
    window = Window("leading worker killed (SIGKILL)", time.time())
    if leader is None:
        window.notes.append(f"no leader found (lease holder {holder!r}): FAILED")
        window.end = time.time()
    else:
        deployment.workers[leader].process.kill()
        deployment.workers[leader].process.wait(timeout=10)
        while time.time() - window.start < TAKE_OVER_LIMIT + 30:
            now_holder = lease_holder(url)
            if now_holder and now_holder != holder:
                break
            time.sleep(0.5)
        window.end = time.time()
        taken = worker_of(deployment, lease_holder(url))
        took = window.end - window.start
        verdict = "ok" if taken and taken != leader and took <= TAKE_OVER_LIMIT else "FAILED"
        window.notes.append(
            f"{leader} killed; {taken} took the lease after {took:.1f} s (limit {TAKE_OVER_LIMIT:.1f} s): {verdict}"
        )
        # As systemd would (Restart=always): the killed worker comes back, as the standby.
        deployment.start_worker(f"{leader}-again")
    windows.append(window)
    log(f"{window.fault} at +{window.start - began:.0f} s: {'; '.join(window.notes)}")

    wait_until(began, seconds * 0.70)
    window = Window("PostgreSQL restarted (pg_ctl restart -m fast)", time.time())
    cluster.restart()
    window.end = time.time()
    window.notes.append(f"back after {window.end - window.start:.1f} s")
    windows.append(window)
    log(f"PostgreSQL restarted at +{window.start - began:.0f} s, back after {window.end - window.start:.1f} s")
    return windows


def log(line: str) -> None:
    print(f"  [{dt.datetime.now().strftime('%H:%M:%S')}] {line}", flush=True)  # noqa: DTZ005 (the reader's clock)


# --------------------------------------------------------------------------------------------------------------
# Checks


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def window_of(moment: float, windows: list[Window]) -> Window | None:
    """The fault window a moment falls in: the latest fault begun by then, if it has not been over too long."""
    begun = [w for w in windows if w.start - 1.0 <= moment]
    return begun[-1] if begun and begun[-1].holds(moment) else None


def check_errors(events: list[dict], windows: list[Window], began: float) -> list[str]:
    """Every failed attempt inside a fault window, and none given up (each retried until it succeeded)."""
    failed = [e for e in events if e["outcome"] in ("retry", "gave-up")]
    recovered = [e for e in events if e["outcome"] == "recovered"]
    outside = [e for e in failed if window_of(e["t"], windows) is None]
    given_up = [e for e in failed if e["outcome"] == "gave-up"]
    print(f"  failed attempts {len(failed)}, requests recovered by a retry {len(recovered)}, given up {len(given_up)}")
    for window in windows:
        inside = [e for e in failed if window_of(e["t"], windows) is window]
        kinds: dict[str, int] = {}
        for e in inside:
            kind = e["error"].split(":")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        last = f", the last at +{inside[-1]['t'] - began:.1f} s" if inside else ""
        print(
            f"    {window.fault:<46} at +{window.start - began:3.0f} s: {len(inside)} failed attempts"
            f" {kinds or ''}{last}"
        )
    for e in outside[:10]:
        print(f"    OUTSIDE any window at +{e['t'] - began:.1f} s: {e['name']}: {e['error']}")
    problems = []
    if outside:
        problems.append(f"{len(outside)} failed attempts outside the fault windows")
    if given_up:
        problems.append(f"{len(given_up)} requests failed for good: " + "; ".join(e["error"] for e in given_up[:3]))
    return problems


class Arrivals:
    """When each e-mail reached the sink: the sink keeps them in order, without times, so its count is sampled."""

    def __init__(self, smtp: SmtpServer):
        self.smtp = smtp
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append((time.time(), len(self.smtp.messages)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def time_of(self, index: int) -> float:
        return next((moment for moment, count in self.samples if count > index), time.time())


def explain_duplicates(smtp: SmtpServer, arrivals: Arrivals, windows: list[Window], began: float) -> None:
    """Each e-mail received twice: when its copies arrived, and the fault window of the first copy if any."""
    seen: dict[str, int] = {}
    for index, message in enumerate(smtp.messages):
        first = seen.setdefault(message.message_id, index)
        if first == index:
            continue
        at_first, again = arrivals.time_of(first), arrivals.time_of(index)
        window = window_of(at_first, windows)
        where = window.fault if window else "no fault window"
        print(
            f"    received twice {message.message_id}: +{at_first - began:.1f} s and +{again - began:.1f} s ({where})"
        )


def check_jobs(url: str) -> list[str]:
    """No (job, period) run twice, whichever worker ran it; which worker ran what, for the reader."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            twice = connection.scalar(
                text("SELECT count(*) FROM (SELECT 1 FROM job_runs GROUP BY job, period HAVING count(*) > 1) d")
            )
            rows = connection.execute(
                text("SELECT job, count(*), count(DISTINCT worker) FROM job_runs GROUP BY job ORDER BY job")
            ).all()
    finally:
        engine.dispose()
    summary = ", ".join(
        f"{job} {runs} (by {workers} worker{'s' if workers > 1 else ''})" for job, runs, workers in rows
    )
    print(f"  job runs: {summary or 'none'}; (job, period) run twice: {twice}")
    return [f"{twice} (job, period) pairs run twice"] if twice else []


def check_audit(env: dict) -> list[str]:
    flask = Path(sys.executable).parent / "flask"
    done = subprocess.run(
        [str(flask), "hub", "audit", "verify"], env=env, cwd=REPO, capture_output=True, text=True, timeout=600
    )
    said = (done.stdout + done.stderr).strip().splitlines()
    print(f"  flask hub audit verify: exit {done.returncode}: {' / '.join(said[:3])}")
    return [] if done.returncode == 0 else [f"audit verify exited {done.returncode}"]


def check_windows(windows: list[Window]) -> list[str]:
    return [f"{w.fault}: {note}" for w in windows for note in w.notes if "FAILED" in note]


# --------------------------------------------------------------------------------------------------------------


def run_locust(args, deployment: Deployment, work_path: Path, events: Path, workdir: Path, users: int):
    prefix = workdir / "r15"
    env = dict(os.environ)
    env.update(P7_WORK=str(work_path), P7_RETRY="1", P7_EVENTS=str(events))
    spawn = min(10.0, args.seconds / 10)
    command = [
        args.locust,
        "-f",
        str(REPO / "bench" / "p7" / "locustfile.py"),
        "--headless",
        "--only-summary",
        "-H",
        f"http://{HOST}:{deployment.proxy_port}",
        "-u",
        str(users),
        "-r",
        f"{users / spawn:.2f}",
        "-t",
        f"{args.seconds:.0f}s",
        "--stop-timeout",
        "40",  # past the retries' back-off: a user stopped mid-retry would look like a request given up
        "--csv",
        str(prefix),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, prefix


def summarise(prefix: Path) -> dict:
    with open(f"{prefix}_stats.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    total = next(row for row in rows if row["Name"] == "Aggregated")
    signed = sum(int(r["Request Count"]) - int(r["Failure Count"]) for r in rows if r["Name"] == "POST sign")
    return {
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "rate": float(total["Requests/s"]),
        "p50": float(total["50%"]),
        "p95": float(total["95%"]),
        "p99": float(total["99%"]),
        "signed": signed,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--multiple", type=float, default=1.0, help="of the national peak, ~100 req/s (default 1)")
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the load, faults inside (default 300)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn process (default 4)")
    parser.add_argument("--cpts", type=int, default=40, help="CPTS copies seeded (default 40)")
    parser.add_argument("--pg-port", type=int, default=55433, help="the private cluster's port (default 55433)")
    parser.add_argument("--keep", action="store_true", help="keep the processes' logs and locust's files")
    parser.add_argument("--locust", default=str(Path(sys.executable).parent / "locust"))
    args = parser.parse_args(argv)

    haproxy = ensure_haproxy()
    if haproxy is None:
        print("haproxy is not installed and cannot be (apt-get install haproxy as root): the fault run is skipped")
        return 2
    if not (PG_BIN / "initdb").exists():
        print(f"PostgreSQL 15 is not installed ({PG_BIN}): the fault run is skipped")
        return 2
    load_before = os.getloadavg()
    started = time.monotonic()
    cluster = Cluster(args.pg_port)
    problems: list[str] = []
    workdir: Path | None = None
    try:
        cluster.create()
        url = cluster.url
        prepare_postgresql(url)
        secret = secrets.token_urlsafe(48)
        signer = p7.cookie_signer(url, secret)
        teams, ids = p7.seed_teams(url, args.cpts, signer)
        work = p7.Work(url, ids)
        users = max(1, round(args.multiple * p7.NATIONAL_PEAK * p7.THINK_MEAN))
        per_second = args.multiple * p7.NATIONAL_PEAK / p7.REQUESTS_PER_TELECONSULTATION
        items = work.make(int(per_second * args.seconds * 1.3) + users)
        print(
            f"private PostgreSQL 15 on port {args.pg_port}; {args.cpts} CPTS and {len(items)} teleconsultations "
            f"seeded in {time.monotonic() - started:.0f} s; load average {load_before[0]:.2f}",
            flush=True,
        )
        with SmtpServer() as smtp:
            workdir = Path(tempfile.mkdtemp(prefix="r15-"))
            arrivals = Arrivals(smtp)
            work_path = workdir / "work.json"
            work_path.write_text(json.dumps({"teams": teams, "items": items}), encoding="utf-8")
            events = workdir / "events.jsonl"
            env = p7.hub_env(url, secret, smtp.port)
            env.update(HUB_TRUST_PROXY_HOPS="1", HUB_OUTBOX_LEASE_SECONDS=str(OUTBOX_LEASE_SECONDS))
            deployment = Deployment(env, workdir, threads=args.threads, haproxy=haproxy)
            try:
                deployment.start_node(0)
                deployment.start_node(1)
                deployment.start_proxy()
                deployment.start_worker("worker-a")
                wait_for_leader(deployment, url)  # worker-a leads; worker-b, started after, stands by
                deployment.start_worker("worker-b")
                print(
                    f"haproxy on {HOST}:{deployment.proxy_port} → 2 nodes × {len(INSTANCES)} gunicorn processes × "
                    f"{args.threads} threads; "
                    f"2 hub workers (leader {worker_of(deployment, lease_holder(url))}); locust {users} users "
                    f"({args.multiple:g}× the national peak, ~{args.multiple * p7.NATIONAL_PEAK:.0f} req/s offered) "
                    f"for {args.seconds:.0f} s",
                    flush=True,
                )
                began = time.time()
                locust, prefix = run_locust(args, deployment, work_path, events, workdir, users)
                windows = inject_faults(deployment, cluster, url, began, args.seconds)
                output, _ = locust.communicate(timeout=args.seconds + 300)
                if not Path(f"{prefix}_stats.csv").exists():
                    raise RuntimeError(f"locust wrote no statistics (exit {locust.returncode}):\n{output[-3000:]}")
                stats = summarise(prefix)
                p7.wait_for_emails(url, stalled=OUTBOX_LEASE_SECONDS * 3)
                leader_after = worker_of(deployment, lease_holder(url))
            except Exception:
                for process in [*deployment.workers.values(), *deployment.web_processes()]:
                    print(f"--- {process.name} log:\n{process.log_tail()}", file=sys.stderr)
                raise
            finally:
                deployment.stop()
                arrivals.stop()
            received = smtp.message_ids()
            load_after = os.getloadavg()
            print(
                f"\nR15 load: {stats['requests']} requests, {stats['rate']:.1f} req/s, p50 {stats['p50']:.0f} ms, "
                f"p95 {stats['p95']:.0f} ms, p99 {stats['p99']:.0f} ms, {stats['failures']} failed attempts "
                f"(each retried by the client)"
            )
            print("faults:")
            for window in windows:
                print(f"  +{window.start - began:5.0f} s {window.fault}: {'; '.join(window.notes) or 'done'}")
            print("checks:")
            print(f"  scheduler lease after the run held by: {leader_after}")
            if leader_after is None:
                problems.append("no worker holds the scheduler lease after the run")
            problems += check_windows(windows)
            problems += check_errors(read_events(events), windows, began)
            # The audit chain is verified below by the CLI, with the nodes' key and checkpoint file.
            problems += p7.check_integrity(url, stats["signed"], users, received, audit_key=None)
            explain_duplicates(smtp, arrivals, windows, began)
            problems += check_jobs(url)
            problems += check_audit(env)
    finally:
        cluster.destroy()
        if workdir is not None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.keep:
        print(f"logs kept in {workdir}")
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    print(
        f"R15 {'passed' if not problems else 'FAILED'}; run {time.monotonic() - started:.0f} s, "
        f"{dt.date.today().isoformat()}, {os.cpu_count()} cores; load average before {load_before[0]:.2f}, "  # noqa: DTZ011
        f"after {load_after[0]:.2f} (1 min), {load_after[1]:.2f} (5 min)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
