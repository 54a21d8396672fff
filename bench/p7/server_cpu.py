"""P7's requests, CPU per request: the same teleconsultations in process (Flask test client) and under gunicorn.

Where does a web worker's CPU go under gunicorn that the in-process figures (bench/read_paths.py,
bench/write_paths.py) do not show? This seeds P7's territory (bench/p7/peak_hour.py's seeding), then sends the
20 requests of a teleconsultation (bench/p7/locustfile.py, without think times) one after the other:

- `inprocess`: through the Flask test client of an app built with the same production settings; CPU = this
  process's time.process_time();
- each `--server` given (gunicorn arguments, e.g. "-w 4 -k sync"): gunicorn started with them, the requests sent
  by one http.client connection kept alive while the server keeps it open (as locust's FastHttpUser does; a sync
  worker closes it after every response); CPU = utime + stime of gunicorn's processes from /proc/<pid>/stat.

Each mode first runs `--warmup` teleconsultations (templates compiled, connections opened in every worker), then
`--count` measured ones; modes alternate `--rounds` times (A/B interleaved on a shared machine). With
`--concurrency N` it also runs N client threads for `--seconds` per server (throughput and CPU per request under
load). With `--profile DIR` each gunicorn worker runs under cProfile and writes DIR/worker-<pid>.prof at exit.
With `--per-route` (and no `--server`: in process only) it prints each request of the mix under its locust name, its
count per teleconsultation, its CPU per request and its share of the mix's CPU.

    .venv/bin/python bench/p7/server_cpu.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_p7 \\
        --server "-w 4 -k sync" --server "-w 3 -k gthread --threads 4 --keep-alive 5"

PostgreSQL only. The script drops and recreates the `public` schema of the database it is given.
"""

import argparse
import http.client
import json
import os
import re
import secrets
import shlex
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.common import HOST, prepare_postgresql  # noqa: E402 (needs the repository on sys.path)
from bench.p7.bodies import CHECK_IN, CHECKLIST, WRITTEN  # noqa: E402
from bench.p7.layout import Process  # noqa: E402
from bench.p7.peak_hour import (  # noqa: E402
    DEFAULT_PG_URL,
    Work,
    cookie_signer,
    hub_env,
    seed_teams,
    start_gunicorn,
)
from tests.servers import SmtpServer  # noqa: E402

PROFILE_CONFIG = """
import cProfile, os, time
def post_fork(server, worker):
    worker._hub_profile = cProfile.Profile(time.process_time)
    worker._hub_profile.enable()
def worker_exit(server, worker):
    worker._hub_profile.disable()
    worker._hub_profile.dump_stats(os.path.join({directory!r}, f"worker-{{os.getpid()}}.prof"))
"""


def teleconsultation(send, team: dict, item: dict) -> int:
    """The locustfile's task, in order and without think times; `send(method, path, headers, body)` → (status,
    body). Returns the number of requests sent; any unexpected status stops the run."""
    coordinator, idel, specialist = team["coordinator"], team["idel"], team["specialist"]
    patient, day = item["patient_id"], item["slot_day"]
    sent = 0

    def call(method, path, *, bearer=None, cookie=None, body=None, expect=(200,), headers=None):
        nonlocal sent
        headers = dict(headers or {})
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        if cookie:
            headers["Cookie"] = cookie
        status, data = send(method, path, headers, body)
        sent += 1
        if status not in expect:
            raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")
        return data

    call("GET", f"/planning?week={day}", cookie=team["coordinator_cookie"])
    call("GET", f"/api/v1/programs/{team['program_id']}/slots?from={day}&to={day}", bearer=coordinator)
    call("GET", f"/api/v1/patients/{patient}", bearer=coordinator)
    booked = call(
        "POST",
        "/api/v1/appointments",
        bearer=coordinator,
        body={"slot_id": item["slot_id"], "patient_id": patient, "place_kind": "lieu_dedie"},
        expect=(201,),
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    visit = f"/api/v1/appointments/{json.loads(booked)['id']}"
    call("GET", f"{visit}/candidates", bearer=coordinator)
    call("GET", "/visits", cookie=team["idel_cookie"])
    call("GET", visit, bearer=idel)
    call("POST", f"{visit}/confirm", bearer=idel)
    call("GET", f"/ical/{team['feed']}.ics", expect=(200, 304))
    call("GET", f"/api/v1/patients/{patient}", bearer=idel)
    call("POST", f"{visit}/checklist", bearer=idel, body=CHECKLIST)
    call("POST", f"{visit}/check-in", bearer=idel, body=CHECK_IN)
    done = item["done_id"]
    call("GET", f"/api/v1/appointments/{done}", bearer=specialist)
    call("GET", f"/api/v1/patients/{item['done_patient_id']}", bearer=specialist)
    draft = call("POST", "/api/v1/reports", bearer=specialist, body={"appointment_id": done}, expect=(201, 200))
    report = json.loads(draft)["id"]
    call("PATCH", f"/api/v1/reports/{report}", bearer=specialist, body=WRITTEN)
    call("POST", f"/api/v1/reports/{report}/sign", bearer=specialist)
    call("GET", f"/api/v1/reports/{report}", bearer=specialist)
    call("GET", "/api/v1/outbox?per_page=20", bearer=coordinator)
    call("GET", "/api/v1/me/desk", bearer=coordinator)
    call("GET", f"/ical/{team['feed']}.ics", expect=(200, 304))
    return sent


class KeepAliveClient:
    """One connection, kept while the server keeps it (HTTP/1.1), opened again when the server closed it."""

    def __init__(self, port: int):
        self.port = port
        self.connection: http.client.HTTPConnection | None = None
        self.connects = 0

    def send(self, method, path, headers, body):
        if self.connection is None:
            self.connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
            self.connects += 1
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers = {**headers, "Content-Type": "application/json"}
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.will_close:
            self.connection.close()
            self.connection = None
        return response.status, data

    def close(self):
        if self.connection is not None:
            self.connection.close()


# The locustfile's request names (its statistics' rows), from the method and the path.
NAMES = [
    (re.compile(pattern), name)
    for pattern, name in (
        (r"GET /planning", "page /planning"),
        (r"GET /visits", "page /visits"),
        (r"GET /ical/", "GET ical"),
        (r"GET /api/v1/programs/\d+/slots", "GET slots"),
        (r"GET /api/v1/patients/\d+$", "GET patient"),
        (r"POST /api/v1/appointments$", "POST /api/v1/appointments"),
        (r"GET /api/v1/appointments/\d+/candidates", "GET candidates"),
        (r"GET /api/v1/appointments/\d+$", "GET appointment"),
        (r"POST /api/v1/appointments/\d+/confirm", "POST confirm"),
        (r"POST /api/v1/appointments/\d+/checklist", "POST checklist"),
        (r"POST /api/v1/appointments/\d+/check-in", "POST check-in"),
        (r"POST /api/v1/reports$", "POST report draft"),
        (r"PATCH /api/v1/reports/\d+$", "PATCH report"),
        (r"POST /api/v1/reports/\d+/sign", "POST sign"),
        (r"GET /api/v1/reports/\d+$", "GET report"),
        (r"GET /api/v1/outbox", "GET outbox"),
        (r"GET /api/v1/me/desk", "GET desk"),
    )
]


def request_name(method: str, path: str) -> str:
    line = f"{method} {path.split('?', 1)[0]}"
    return next(name for pattern, name in NAMES if pattern.match(line))


def in_process_sender(app, per_route: dict[str, list[float]] | None = None):
    """`per_route`, when given, receives each request's CPU milliseconds (time.process_time) under its name."""
    client = app.test_client(use_cookies=False)

    def send(method, path, headers, body):
        started = time.process_time()
        response = client.open(path, method=method, headers=headers, json=body)
        data = response.get_data()
        if per_route is not None:
            per_route.setdefault(request_name(method, path), []).append((time.process_time() - started) * 1000)
        return response.status_code, data

    return send


def route_table(per_route: dict[str, list[float]], teleconsultations: int) -> str:
    """Each request of the mix: how many per teleconsultation, its CPU per request (mean and median) and its share
    of the in-process CPU of the mix (mean × count), highest share first."""
    total = sum(sum(times) for times in per_route.values())
    rows = sorted(per_route.items(), key=lambda item: -sum(item[1]))
    lines = [f"{'request':28} {'per visit':>9} {'CPU mean ms':>11} {'median ms':>9} {'share':>6}"]
    for name, times in rows:
        lines.append(
            f"{name:28} {len(times) / teleconsultations:>9.0f} {statistics.mean(times):>11.2f}"
            f" {statistics.median(times):>9.2f} {sum(times) / total:>6.1%}"
        )
    return "\n".join(lines)


def cpu_times(pids: list[int]) -> tuple[float, float]:
    """(utime, stime) in seconds of these processes summed (a process gone since is counted as 0)."""
    ticks = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])
    return user / ticks, system / ticks


def server_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *map(int, children)]


def measure_in_process(app, teams, items, per_route: dict[str, list[float]] | None = None) -> str:
    before = os.times()
    sent = run_sequential(in_process_sender(app, per_route), teams, items)
    after = os.times()
    user, system = after.user - before.user, after.system - before.system
    return (
        f"{(user + system) * 1000 / sent:.2f} ms CPU/request (user {user * 1000 / sent:.2f}, system "
        f"{system * 1000 / sent:.2f}; {sent} requests)"
    )


def measure_server(port: int, pids: list[int], teams, items) -> str:
    client = KeepAliveClient(port)
    before, started = cpu_times(pids), time.process_time()
    sent = run_sequential(client.send, teams, items)
    after, client_cpu = cpu_times(pids), time.process_time() - started
    client.close()
    user, system = after[0] - before[0], after[1] - before[1]
    return (
        f"{(user + system) * 1000 / sent:.2f} ms CPU/request (user {user * 1000 / sent:.2f}, system "
        f"{system * 1000 / sent:.2f}; {sent} requests, {client.connects} connections, "
        f"client {client_cpu * 1000 / sent:.2f} ms)"
    )


def run_sequential(send, teams, items) -> int:
    return sum(teleconsultation(send, teams[str(item["cpts"])], item) for item in items)


def run_concurrent(port: int, teams, items, threads: int, seconds: float) -> tuple[int, float]:
    """`threads` clients, each its own connection, taking teleconsultations until `seconds` have passed."""
    lock = threading.Lock()
    pending = iter(items)
    counts = []
    deadline = time.monotonic() + seconds
    errors: list[BaseException] = []

    def client():
        http_client = KeepAliveClient(port)
        sent = 0
        try:
            while time.monotonic() < deadline:
                with lock:
                    item = next(pending, None)
                if item is None:
                    break
                sent += teleconsultation(http_client.send, teams[str(item["cpts"])], item)
        except BaseException as error:  # reported after the run
            errors.append(error)
        finally:
            http_client.close()
            with lock:
                counts.append(sent)

    began = time.monotonic()
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise RuntimeError(f"{len(errors)} client errors, first: {errors[0]!r}")
    return sum(counts), time.monotonic() - began


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--server", action="append", default=[], help='gunicorn arguments, e.g. "-w 4 -k sync"')
    parser.add_argument("--no-inprocess", action="store_true")
    parser.add_argument("--cpts", type=int, default=8)
    parser.add_argument("--count", type=int, default=20, help="measured teleconsultations per mode and round")
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=0, help="client threads of the throughput run (0: none)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--profile", help="directory for each gunicorn worker's cProfile output")
    parser.add_argument("--per-route", action="store_true", help="in process: print each request's CPU and share")
    args = parser.parse_args(argv)
    servers = args.server or ([] if args.per_route else ["-w 4 -k sync"])  # the table alone needs no server

    secret = secrets.token_urlsafe(48)
    prepare_postgresql(args.pg_url)
    signer = cookie_signer(args.pg_url, secret)  # also sets this process's HUB_* for the in-process app
    teams, ids = seed_teams(args.pg_url, args.cpts, signer)
    work = Work(args.pg_url, ids)
    print(f"seeded {args.cpts} CPTS; load average {os.getloadavg()[0]:.2f}", flush=True)
    results: dict[str, list[str]] = {}
    per_route: dict[str, list[float]] | None = {} if args.per_route else None
    with tempfile.TemporaryDirectory(prefix="bench-p7-cpu-") as tmp, SmtpServer() as smtp:
        workdir = Path(tmp)
        env = hub_env(args.pg_url, secret, smtp.port)
        app = None
        if not args.no_inprocess:
            os.environ.update({k: v for k, v in env.items() if k.startswith("HUB_")})
            from hub import create_app

            app = create_app()
            run_sequential(in_process_sender(app), teams, work.make(args.warmup))
        if args.profile:
            os.makedirs(args.profile, exist_ok=True)
            config = workdir / "profile_conf.py"
            config.write_text(PROFILE_CONFIG.format(directory=os.path.abspath(args.profile)))
            servers = [f"{server_args} -c {config}" for server_args in servers]
        # Every server runs from the start and the modes take turns within each round: the other helpers' load
        # drifts over minutes, so a figure is only compared with those of its own round.
        started: dict[str, tuple[Process, int]] = {}
        try:
            for server_args in servers:
                started[server_args] = start_gunicorn(env, shlex.split(server_args), workdir)
                run_sequential(KeepAliveClient(started[server_args][1]).send, teams, work.make(args.warmup))
            for round_ in range(args.rounds):
                if app is not None:
                    line = measure_in_process(app, teams, work.make(args.count), per_route)
                    results.setdefault("in process", []).append(line)
                    print(f"round {round_ + 1} in process: {line}", flush=True)
                for server_args, (process, port) in started.items():
                    pids = server_pids(process.process.pid)
                    line = measure_server(port, pids, teams, work.make(args.count))
                    results.setdefault(server_args, []).append(line)
                    print(f"round {round_ + 1} gunicorn {server_args}: {line}", flush=True)
                for server_args, (process, port) in started.items() if args.concurrency else ():
                    pids = server_pids(process.process.pid)
                    before = sum(cpu_times(pids))
                    items = work.make(int(args.seconds * 8))
                    sent, wall = run_concurrent(port, teams, items, args.concurrency, args.seconds)
                    cpu = sum(cpu_times(pids)) - before
                    line = f"{sent / wall:.1f} req/s, {cpu * 1000 / sent:.2f} ms CPU/request ({sent} in {wall:.1f} s)"
                    results.setdefault(f"{server_args} ×{args.concurrency} clients", []).append(line)
                    print(f"round {round_ + 1} gunicorn {server_args} ×{args.concurrency} clients: {line}", flush=True)
        finally:
            for process, _port in started.values():
                process.stop()
    if per_route:
        print(route_table(per_route, args.count * args.rounds))
    print(f"summary (load average now {os.getloadavg()[0]:.2f}):")
    for name, lines in results.items():
        print(f"  {name}: " + " | ".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
