"""The deployment files (deploy/): HAProxy accepts its configuration with the example environment, sends requests to
every gunicorn process and at most its threads' worth to each (never « unlimited »), and refuses a proxy.env of the
old layout; gunicorn's settings give a web node its database limits and warn of a HUB_WEB_WORKERS of the old layout;
the worker yields the CPU to the web processes.
The HAProxy tests run when haproxy is installed."""

import contextlib
import csv
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.deployed_gunicorn import DEPLOY, deployed_gunicorn, free_address, wait_until_listening

HAPROXY = shutil.which("haproxy")
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")


def _example_environment() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "proxy.env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@needs_haproxy
def test_haproxy_accepts_the_configuration_with_the_example_environment():
    environment = {"PATH": os.environ.get("PATH", "")} | _example_environment()
    checked = subprocess.run(
        [HAPROXY, "-c", "-f", str(DEPLOY / "haproxy.cfg")], env=environment, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout + checked.stderr


@contextlib.contextmanager
def _proxy(
    environment: dict[str, str], tmp_path: Path, config: Path = DEPLOY / "haproxy.cfg"
) -> Iterator[tuple[subprocess.Popen, Path, Path]]:
    """A live HAProxy with this configuration and environment, and a stats socket: (process, socket, log)."""
    run = Path(tempfile.mkdtemp(dir=tmp_path))
    stats, extra, log = run / "stats.sock", run / "stats.cfg", run / "haproxy.log"
    extra.write_text(f"global\n    stats socket {stats} mode 600 level user\n", encoding="utf-8")
    with log.open("wb") as output:
        proxy = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(config), "-f", str(extra)],
            env={"PATH": os.environ.get("PATH", "")} | environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proxy, stats, log
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


def _servers(proxy: subprocess.Popen, stats: Path, log: Path) -> dict[str, dict[str, str]]:
    """HAProxy's statistics row of each server of the `web` backend, by name."""
    answer = _ask(stats, b"show stat\n", proxy, log)
    rows = csv.DictReader(answer.decode().lstrip("# ").splitlines())
    return {row["svname"]: row for row in rows if row["pxname"] == "web" and row["svname"].startswith("web")}


def _server_limits(environment: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The `slim` (server maxconn) HAProxy shows for each server, from a live proxy with this environment."""
    with _proxy(environment, tmp_path) as running:
        return {name: row["slim"] for name, row in _servers(*running).items()}


def _ask(stats: Path, command: bytes, proxy: subprocess.Popen, log: Path) -> bytes:
    deadline = time.monotonic() + 10
    while True:
        assert proxy.poll() is None, log.read_text(errors="replace")
        try:
            with socket.socket(socket.AF_UNIX) as connection:
                connection.connect(str(stats))
                connection.sendall(command)
                answer = b""
                while chunk := connection.recv(65536):
                    answer += chunk
                return answer
        except (FileNotFoundError, ConnectionRefusedError):
            assert time.monotonic() < deadline, "haproxy did not open its stats socket"
            time.sleep(0.05)


def _addresses(*ports: int) -> dict[str, str]:
    names = ("HUB_NODE1_A", "HUB_NODE1_B", "HUB_NODE2_A", "HUB_NODE2_B")
    return {"HUB_PROXY_BIND": free_address()} | {
        name: f"127.0.0.1:{port}" for name, port in zip(names, ports, strict=True)
    }


@needs_haproxy
def test_each_gunicorn_process_is_a_server_whose_limit_is_its_threads_never_unlimited(tmp_path):
    addresses = _addresses(9, 9, 9, 9)
    every = {"web1a", "web1b", "web2a", "web2b"}
    assert _server_limits(addresses | {"HUB_PROCESS_SLOTS": "3"}, tmp_path) == dict.fromkeys(every, "3")
    # Unset: the default threads of a process, not an empty maxconn (which HAProxy takes as none).
    assert _server_limits(addresses, tmp_path) == dict.fromkeys(every, "4")


@needs_haproxy
def test_the_proxy_runs_one_thread(tmp_path):
    """Two threads contend for a server queue's lock at each dequeue: 4–5 times the CPU a request once the gunicorn
    processes are full (bench/p7/proxy_cpu.py). HAProxy's default is a thread per core."""
    with _proxy(_addresses(9, 9, 9, 9), tmp_path) as (proxy, stats, log):
        info = dict(
            line.split(": ", 1)
            for line in _ask(stats, b"show info\n", proxy, log).decode().splitlines()
            if ": " in line
        )
    assert info["Nbthread"] == "1"


@needs_haproxy
def test_haproxy_refuses_a_proxy_env_of_the_old_layout():
    """One address per host (HUB_NODE1, HUB_NODE2) and a limit per host: HAProxy must stop, not start with servers
    of no address or with eight requests for a process of four threads."""
    old = {"HUB_PROXY_BIND": free_address(), "HUB_NODE1": "127.0.0.1:9", "HUB_NODE2": "127.0.0.1:9"}
    checked = subprocess.run(
        [HAPROXY, "-c", "-f", str(DEPLOY / "haproxy.cfg")],
        env={"PATH": os.environ.get("PATH", "")} | old | {"HUB_NODE_SLOTS": "8"},
        capture_output=True,
        text=True,
    )
    assert checked.returncode != 0
    assert "expects <name> and <addr>" in checked.stdout + checked.stderr


class _Process(ThreadingHTTPServer):
    """Stands for one gunicorn process: answers /healthz at once, any other path after HOLD seconds, and counts the
    requests it serves at once, as HAProxy's keep-alive connections bring them."""

    HOLD = 0.6
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.active = self.most = self.served = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Process

    def do_GET(self):
        if self.path != "/healthz":
            with self.server.lock:
                self.server.active += 1
                self.server.most = max(self.server.most, self.server.active)
            time.sleep(self.server.HOLD)
            with self.server.lock:
                self.server.active -= 1
                self.server.served += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@needs_haproxy
def test_haproxy_sends_requests_to_every_process_and_each_at_most_its_threads(tmp_path):
    """Four times the processes' slots at once: each process gets requests, none more at once than HUB_PROCESS_SLOTS
    (the rest wait in the proxy, where they could still go to another process), and every request is answered."""
    processes = [_Process() for _ in range(4)]
    slots, requests = 2, 16
    environment = _addresses(*(process.server_address[1] for process in processes)) | {"HUB_PROCESS_SLOTS": "2"}
    try:
        with _proxy(environment, tmp_path) as running:
            deadline = time.monotonic() + 10
            while {row["status"] for row in _servers(*running).values()} != {"UP"}:
                assert time.monotonic() < deadline, _servers(*running)
                time.sleep(0.1)
            host, port = environment["HUB_PROXY_BIND"].split(":")
            statuses: list[int] = []

            def ask() -> None:
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
                connection.request("GET", "/work")
                statuses.append(connection.getresponse().status)
                connection.close()

            clients = [threading.Thread(target=ask) for _ in range(requests)]
            for client in clients:
                client.start()
            for client in clients:
                client.join()
    finally:
        for process in processes:
            process.shutdown()
            process.server_close()
    assert statuses == [200] * requests
    assert [process.most for process in processes] == [slots] * 4
    assert sum(process.served for process in processes) == requests


def test_p7_starts_the_worker_at_its_unit_s_priority_its_session_group_too_and_named_as_the_unit_names_it(tmp_path):
    """P7 and the fault run start the worker in a session of its own: where the kernel groups tasks by session
    (autogroup), a nice value alone weighs only within that session, and the worker's bursts would compete with a
    web instance at its full weight (docs/deployment.md, « Worker priority »)."""
    from bench.p7.layout import WORKER_UNIT, unit_setting, worker_command

    nice = unit_setting(WORKER_UNIT, "Nice")
    report = tmp_path / "priority"
    probe = tmp_path / "probe"  # stands for `flask`, exec'd with the worker's arguments
    probe.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "group = open('/proc/self/autogroup').read().split()[-1] if os.path.exists('/proc/self/autogroup') else ''\n"
        "name = os.environ['PGAPPNAME']\n"
        f"open({str(report)!r}, 'w').write(f'{{os.nice(0)}} {{group}} {{name}} {{sys.argv[1:]}}')\n"
    )
    probe.chmod(0o755)
    command = worker_command()
    command[-1] = str(probe)
    # In a session of its own, as P7 starts it: the group's nice it sets must not be pytest's own session's.
    subprocess.run(command, check=True, timeout=30, start_new_session=True)

    niceness, group, application, arguments = report.read_text().split(" ", 3)
    assert int(niceness) == min(19, os.nice(0) + int(nice)) and arguments == "['hub', 'worker']"
    assert application == unit_setting(WORKER_UNIT, "Environment=PGAPPNAME") == "cpts-hub-worker"  # bench/p7/cpu.py
    if Path("/proc/self/autogroup").exists():
        assert group == nice


@needs_haproxy
def test_p7_one_host_configuration_is_the_deployed_one_with_this_host_servers_only(tmp_path):
    """P7 runs one web host (bench/p7/peak_hour.py): its proxy must differ from deploy/haproxy.cfg by the servers
    only, one per local gunicorn instance, each limited to its threads like the deployed ones."""
    from bench.p7.layout import one_host_haproxy_cfg

    config = one_host_haproxy_cfg([8000, 8001, 8002])
    deployed = (DEPLOY / "haproxy.cfg").read_text(encoding="utf-8").splitlines()
    ours = config.splitlines()

    def server(line: str) -> bool:
        return line.split()[:1] == ["server"]

    assert [line for line in ours if not server(line)] == [line for line in deployed if not server(line)]
    assert [line.split()[1:] for line in ours if server(line)] == [
        ["web1a", "127.0.0.1:8000", "check"],
        ["web1b", "127.0.0.1:8001", "check"],
        ["web1c", "127.0.0.1:8002", "check"],
    ]
    path = tmp_path / "one-host.cfg"
    path.write_text(config, encoding="utf-8")
    with _proxy({"HUB_PROXY_BIND": free_address(), "HUB_PROCESS_SLOTS": "3"}, tmp_path, path) as running:
        assert {name: row["slim"] for name, row in _servers(*running).items()} == dict.fromkeys(
            ("web1a", "web1b", "web1c"), "3"
        )


def test_haproxy_does_not_send_again_a_request_that_timed_out():
    """After `timeout server` the request is still running on its node (gthread never kills it): a copy would only
    take another thread."""
    (retry_on,) = [
        line.split()[1:]
        for line in (DEPLOY / "haproxy.cfg").read_text().splitlines()
        if line.strip().startswith("retry-on")
    ]
    assert "response-timeout" not in retry_on
    assert "conn-failure" in retry_on


def _gunicorn_settings(environment: dict[str, str]) -> dict[str, str]:
    """The HUB_* database limits the web node's processes see once gunicorn has read deploy/gunicorn_conf.py."""
    code = (
        "import os, runpy; runpy.run_path(os.environ['CONF']);"
        "print(os.environ.get('HUB_STATEMENT_TIMEOUT_MS'), os.environ.get('HUB_LOCK_TIMEOUT_MS'))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=clean | environment | {"CONF": str(DEPLOY / "gunicorn_conf.py")},
        capture_output=True,
        text=True,
        check=True,
    )
    statement, lock = result.stdout.split()
    return {"statement": statement, "lock": lock}


def test_gunicorn_conf_bounds_a_web_node_database_work_unless_hub_env_says_otherwise():
    defaults = _gunicorn_settings({})
    assert defaults == {"statement": "55000", "lock": "10000"}
    assert int(defaults["statement"]) < 60_000, "below HAProxy's timeout server: the answer is the hub's"
    assert _gunicorn_settings({"HUB_STATEMENT_TIMEOUT_MS": "0", "HUB_LOCK_TIMEOUT_MS": "3000"}) == {
        "statement": "0",
        "lock": "3000",
    }


def _gunicorn_start_log(environment: dict[str, str], tmp_path: Path) -> str:
    """What gunicorn logs, with deploy/gunicorn_conf.py and this environment, until its worker has booted."""
    tiny_app = "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'']\n"
    lines = []
    with deployed_gunicorn(tiny_app, environment, tmp_path) as (server, _):
        assert server.stderr is not None
        for line in server.stderr:
            lines.append(line)
            if "Booting worker" in line:
                break
    return "".join(lines)


def test_gunicorn_conf_warns_that_an_old_hub_web_workers_is_ignored(tmp_path):
    """workers = 1 for each cpts-hub-web@<port> instance: a hub.env of the old layout must not pass unseen."""
    told = _gunicorn_start_log({"HUB_WEB_WORKERS": "2"}, tmp_path)
    assert "[WARNING] HUB_WEB_WORKERS=2 is ignored" in told
    assert told.count("Booting worker") == 1
    assert "HUB_WEB_WORKERS" not in _gunicorn_start_log({}, tmp_path)


def _unit_settings(name: str) -> dict[str, str]:
    lines = (DEPLOY / "systemd" / name).read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_the_worker_yields_the_cpu_to_the_web_processes():
    """Its bursts (PDFs, e-mails) are asynchronous, the web requests interactive: a lower weight under either way the
    kernel may share the CPU between them (CPUWeight between cgroups, nice within one), the web processes at the
    defaults."""
    worker, web = _unit_settings("cpts-hub-worker.service"), _unit_settings("cpts-hub-web@.service")
    assert int(worker["Nice"]) > 0
    assert int(worker["CPUWeight"]) < 100  # systemd's default weight, the web instances'
    assert "Nice" not in web
    assert "CPUWeight" not in web


def _switch_interval_served(environment: dict[str, str], tmp_path: Path) -> float:
    """The GIL switch interval a web node's worker process runs with (deploy/gunicorn_conf.py, a forked worker)."""
    interval_app = (
        "import sys\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [repr(sys.getswitchinterval()).encode()]\n"
    )
    with deployed_gunicorn(interval_app, environment, tmp_path) as (_, address):
        wait_until_listening(address)
        host, port = address.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", "/")
            return float(connection.getresponse().read())
        finally:
            connection.close()


def test_a_web_process_hands_the_gil_over_every_millisecond_unless_hub_env_says_otherwise(tmp_path):
    # CPython's 5 ms made a busy process's requests, back from their round trips, wait for each other's CPU: P7 at 5×
    # answered p95 760 ms with it, 150 ms with 1 ms (bench/README.md, eighth pass).
    assert _switch_interval_served({}, tmp_path) == pytest.approx(0.001)
    assert _switch_interval_served({"HUB_GIL_SWITCH_MS": "5"}, tmp_path) == pytest.approx(0.005)


def test_gunicorn_conf_runs_the_kept_connection_worker_unless_hub_env_says_gthread(tmp_path):
    """hub/http/gunicorn_worker.py by default; HUB_WEB_WORKER_CLASS=gthread brings gunicorn's own back (a gunicorn
    upgrade that breaks the subclass must not need a code change to serve)."""
    assert "Using worker: hub.http.gunicorn_worker.KeptConnectionWorker" in _gunicorn_start_log({}, tmp_path)
    assert "Using worker: gthread" in _gunicorn_start_log({"HUB_WEB_WORKER_CLASS": "gthread"}, tmp_path)
