"""The deployment files (deploy/): HAProxy accepts its configuration with the example environment, and a node's
limit never silently becomes « unlimited » (an old proxy.env without HUB_NODE_SLOTS); gunicorn's settings give a web
node its database limits. The HAProxy tests run when haproxy is installed."""

import csv
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
HAPROXY = shutil.which("haproxy")
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")


def _example_environment() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "proxy.env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def _free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@needs_haproxy
def test_haproxy_accepts_the_configuration_with_the_example_environment():
    environment = {"PATH": os.environ.get("PATH", "")} | _example_environment()
    checked = subprocess.run(
        [HAPROXY, "-c", "-f", str(DEPLOY / "haproxy.cfg")], env=environment, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout + checked.stderr


def _server_limits(environment: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The `slim` (server maxconn) HAProxy shows for each server, from a live proxy with this environment."""
    run = Path(tempfile.mkdtemp(dir=tmp_path))
    stats, extra, log = run / "stats.sock", run / "stats.cfg", run / "haproxy.log"
    extra.write_text(f"global\n    stats socket {stats} mode 600 level user\n", encoding="utf-8")
    with log.open("wb") as output:
        proxy = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(DEPLOY / "haproxy.cfg"), "-f", str(extra)],
            env={"PATH": os.environ.get("PATH", "")} | environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        answer = _ask(stats, b"show stat\n", proxy, log)
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
    rows = csv.DictReader(answer.decode().lstrip("# ").splitlines())
    return {row["svname"]: row["slim"] for row in rows if row["pxname"] == "web" and row["svname"].startswith("web")}


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


@needs_haproxy
def test_a_node_limit_is_never_unlimited_even_with_an_old_proxy_env(tmp_path):
    nodes = {"HUB_PROXY_BIND": _free_address(), "HUB_NODE1": "127.0.0.1:9", "HUB_NODE2": "127.0.0.1:9"}
    assert _server_limits(nodes | {"HUB_NODE_SLOTS": "6"}, tmp_path) == {"web1": "6", "web2": "6"}
    # proxy.env before HUB_NODE_WORKERS was renamed: the default, not an empty maxconn (which HAProxy takes as none).
    assert _server_limits(nodes | {"HUB_NODE_WORKERS": "4"}, tmp_path) == {"web1": "8", "web2": "8"}


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
