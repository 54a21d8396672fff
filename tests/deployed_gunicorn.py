"""gunicorn as a web node runs it (deploy/gunicorn_conf.py, no HUB_* setting but the test's) serving a test's WSGI app
on a free loopback address: the deployment's tests (tests/test_deploy.py) and the worker's (tests/http/)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@contextlib.contextmanager
def deployed_gunicorn(
    app_source: str, environment: dict[str, str], tmp_path: Path, *, stderr=subprocess.PIPE
) -> Iterator[tuple[subprocess.Popen, str]]:
    """gunicorn serving `app_source`'s `app` with the deployed settings and this environment; its stderr piped (text)
    unless given. Stopped on leaving with SIGQUIT, as the arbiter then stops its worker (killed outright, the arbiter
    would leave its worker behind until the worker saw it gone)."""
    (tmp_path / "app_under_conf.py").write_text(app_source, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    address = free_address()
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        *("-c", str(DEPLOY / "gunicorn_conf.py"), "--chdir", str(tmp_path), "--bind", address),
        "app_under_conf:app",
    ]
    with subprocess.Popen(command, env=clean | environment, stderr=stderr, text=True) as server:
        try:
            yield server, address
        finally:
            server.send_signal(signal.SIGQUIT)
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()


def wait_until_listening(address: str, timeout: float = 20) -> None:
    """Until gunicorn accepts connections (a request sent then waits for the worker to boot, if it has not)."""
    host, port = address.split(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
