"""The processes of a deployed web host, started on this machine for P7 (bench/p7/peak_hour.py) and the two-node
fault run (bench/two_nodes/fault_run.py): gunicorn instances with deploy/gunicorn_conf.py, HAProxy with
deploy/haproxy.cfg, and the hub worker at its unit's priority (docs/deployment.md)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import HOST, free_port, get

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
HAPROXY_CFG = REPO / "deploy" / "haproxy.cfg"
# The deployment's settings (threaded workers, keep-alive), so that the figures are the deployment's.
GUNICORN_CONF = REPO / "deploy" / "gunicorn_conf.py"
# The worker's CPU priority in the deployment, its unit's Nice=, so that its bursts yield to the web requests here as
# they do there (docs/deployment.md, « Worker priority »). Without systemd there is no unit's cgroup to give
# CPUWeight= to, and where the kernel groups tasks by session (autogroup: each Process below starts one) a nice value
# weighs only within its own session's group: the worker's group is given the unit's Nice= too, the weight that
# CPUWeight=10 gives its cgroup against the web instances' 100.
WORKER_UNIT = REPO / "deploy" / "systemd" / "cpts-hub-worker.service"
WEB_UNIT = REPO / "deploy" / "systemd" / "cpts-hub-web@.service"


def unit_setting(unit: Path, key: str) -> str:
    """A unit's `key=value` line's value (`Environment=PGAPPNAME` for an environment variable's)."""
    lines = unit.read_text(encoding="utf-8").splitlines()
    (value,) = [line[len(key) + 1 :].strip() for line in lines if line.startswith(f"{key}=")]
    return value


class Process:
    """A child process in its own session, its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, command: list[str], env: dict, workdir: Path):
        self.name = name
        self.command = command
        self.log_path = workdir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=35)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def gunicorn_options(workers: int, threads: int) -> list[str]:
    return ["-c", str(GUNICORN_CONF), "-w", str(workers), "--threads", str(threads)]


def worker_command() -> list[str]:
    """`flask hub worker` at the unit's Nice=, its session's scheduling group too where the kernel has one (`sh` and
    `nice` exec it, so its pid, which the lease's holder names, stays), its connections named as the unit names them."""
    nice, name = unit_setting(WORKER_UNIT, "Nice"), unit_setting(WORKER_UNIT, "Environment=PGAPPNAME")
    flask = str(Path(sys.executable).parent / "flask")
    script = (
        f'echo {nice} 2>/dev/null >/proc/self/autogroup; export PGAPPNAME={name}; exec nice -n {nice} "$0" hub worker'
    )
    return ["sh", "-c", script, flask]


def cpu_priority(pid: int) -> str:
    """The worker's nice value and, where the kernel groups tasks by session, its group's: what its figures were
    measured under. Read once `sh` and `nice` have exec'd it (worker_command)."""
    deadline = time.monotonic() + 10
    while b"hub\0worker" not in _command_line(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    nice = os.getpriority(os.PRIO_PROCESS, pid)
    try:
        group = Path(f"/proc/{pid}/autogroup").read_text(encoding="utf-8").split()
    except OSError:
        return f"nice {nice}"
    return f"nice {nice}, its session's group {group[0]} at nice {group[-1]}"


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def wait_healthy(port: int, process: Process, what: str) -> None:
    """Until /healthz answers 200 on the port; stops the process and raises when it exits or never answers."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{process.log_tail()}")
        try:
            if get(port, "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    process.stop()
    raise RuntimeError(f"{what} did not answer within {START_TIMEOUT:.0f} s:\n{process.log_tail()}")


def ensure_haproxy() -> str | None:
    """The haproxy binary, installed from Debian when missing and we may; None when it cannot be had."""
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "haproxy"]
    for commands in ([install], [["apt-get", "update", "-q"], install]):  # the package lists may be stale
        for command in commands:
            subprocess.run(command, env=env, capture_output=True, check=False, timeout=600)
        if Path("/usr/sbin/haproxy").exists():
            return "/usr/sbin/haproxy"
    return None


def start_haproxy(haproxy: str, config: Path, env: dict, workdir: Path, *, bind_port: int, slots: int) -> Process:
    """HAProxy in the foreground (-db, its log on stdout) with this configuration, once it answers /healthz."""
    env = {**env, "HUB_PROXY_BIND": f"{HOST}:{bind_port}", "HUB_PROCESS_SLOTS": str(slots)}
    proxy = Process("haproxy", [haproxy, "-db", "-f", str(config)], env, workdir)
    wait_healthy(bind_port, proxy, "haproxy")
    return proxy


SERVER_LINE = re.compile(r"^(?P<indent>\s*)server\s+\S+\s+\S+(?P<options>.*)$")


def one_host_haproxy_cfg(ports: list[int]) -> str:
    """deploy/haproxy.cfg for one web host: its `server` lines (two hosts × two processes) replaced by one per
    gunicorn instance of this host, with the deployed lines' options; every other line as deployed. The second
    host's servers are left out rather than pointed at a closed port: HAProxy counts a server UP at start until its
    checks fail, and would send it the first requests (retried elsewhere, slower than the deployment's steady
    state), and the host's instance count could not differ from two."""
    lines = HAPROXY_CFG.read_text(encoding="utf-8").splitlines()
    servers = [(index, found) for index, line in enumerate(lines) if (found := SERVER_LINE.match(line))]
    first, last = servers[0][0], servers[-1][0]
    if last - first + 1 != len(servers):
        raise RuntimeError(f"{HAPROXY_CFG}: expected one block of `server` lines")
    deployed = servers[0][1]
    ours = [
        f"{deployed['indent']}server web1{chr(ord('a') + index)} {HOST}:{port}{deployed['options']}"
        for index, port in enumerate(ports)
    ]
    return "\n".join([*lines[:first], *ours, *lines[last + 1 :]]) + "\n"


class WebHost:
    """One web host as deployed: `instances` gunicorn processes (cpts-hub-web@<port>: deploy/gunicorn_conf.py,
    1 process × HUB_WEB_THREADS threads) behind HAProxy (deploy/haproxy.cfg for one host, one server per process,
    maxconn its threads)."""

    def __init__(self, env: dict, workdir: Path, *, instances: int, threads: int, haproxy: str):
        self.env = {**env, "HUB_WEB_THREADS": str(threads), "HUB_TRUST_PROXY_HOPS": "1"}
        self.threads = threads
        self.ports = [free_port() for _ in range(instances)]
        self.proxy_port = free_port()
        self.processes: list[Process] = []
        gunicorn = Path(sys.executable).parent / "gunicorn"
        try:
            for index, port in enumerate(self.ports):
                # The unit's command line: the settings file only, so its `workers` and threads are the ones used.
                command = [str(gunicorn), "-c", str(GUNICORN_CONF), "--bind", f"{HOST}:{port}", "wsgi:app"]
                env = {
                    **self.env,
                    "PGAPPNAME": unit_setting(WEB_UNIT, "Environment=PGAPPNAME").replace("%i", str(port)),
                }
                self.processes.append(Process(f"web1{chr(ord('a') + index)}", command, env, workdir))
            for process, port in zip(self.processes, self.ports, strict=True):
                wait_healthy(port, process, f"gunicorn {process.name}")
            config = workdir / "haproxy-one-host.cfg"
            config.write_text(one_host_haproxy_cfg(self.ports), encoding="utf-8")
            self.processes.append(
                start_haproxy(haproxy, config, self.env, workdir, bind_port=self.proxy_port, slots=threads)
            )
        except BaseException:
            self.stop()
            raise

    def served(self) -> dict[str, int]:
        """Requests HAProxy sent to each instance so far, from its log (option httplog: `hub web/<server>`)."""
        proxy = self.processes[-1]
        words = proxy.log_path.read_text(encoding="utf-8", errors="replace").split()
        return {process.name: words.count(f"web/{process.name}") for process in self.processes[:-1]}

    def log_tails(self) -> str:
        return "\n".join(f"{process.name} log:\n{process.log_tail()}" for process in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
