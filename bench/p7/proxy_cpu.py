"""HAProxy's CPU per request as P7 loads it: many kept client connections, and servers full so that requests wait
in the proxy's queue (deploy/haproxy.cfg's `maxconn` per server), with the deployed file as is and with one
setting changed (`--variant`), side by side in alternating rounds.

The servers are two gunicorn instances (deploy/gunicorn_conf.py's worker class and threads) of a WSGI app written
at run time into a temporary directory, which sleeps `--delay` seconds and answers a 600-byte JSON body: the proxy's
work does not depend on what the app computes, only on how long a request holds a server's slot. With 2 × 4 slots,
a delay of 16 ms and 450 requests/s, the slots are nearly always taken and requests queue in the proxy, as at P7's
knee; with `--delay 0` they never do. The clients are `--connections` asyncio connections kept open, each sending a
request and pausing so that together they offer `--rate` requests/s (P7: ~500 users for 475 requests/s).

Printed per round and variant: requests/s achieved, HAProxy's CPU (utime + stime of its process, /proc) per
request, and the load average (the figure is the proxy's own CPU, but a busy machine still moves it).

    .venv/bin/python bench/p7/proxy_cpu.py                       # deployed vs nbthread 2, 16 ms, 450 req/s
    .venv/bin/python bench/p7/proxy_cpu.py --delay 0 --rounds 2  # nothing queues
"""

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import HOST, free_port
from bench.p7.layout import GUNICORN_CONF, Process, ensure_haproxy, one_host_haproxy_cfg, wait_healthy

APP = """import os, time
DELAY = float(os.environ["PROXY_BENCH_DELAY"])
BODY = b'{"ok": true, "x": "' + b"a" * 600 + b'"}'
def app(environ, start_response):
    if DELAY:
        time.sleep(DELAY)
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]
"""

# The settings compared with the deployed file: `global` lines replaced or added.
VARIANTS = {
    "deployed": None,
    "nbthread 2": "nbthread 2",
    "nbthread 1": "nbthread 1",
}


def with_global(config: str, setting: str | None) -> str:
    """The configuration with `setting` in its `global` section in place of the line of the same keyword."""
    if setting is None:
        return config
    keyword = setting.split()[0]
    lines = [line for line in config.splitlines() if line.split()[:1] != [keyword]]
    at = lines.index("global") + 1
    return "\n".join([*lines[:at], f"    {setting}", *lines[at:]]) + "\n"


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def offer(port: int, connections: int, rate: float, warmup: float, seconds: float, pid: int) -> tuple:
    """Requests/s achieved and the proxy's CPU ms per request over `seconds`, after `warmup`."""
    done = [0]
    period = connections / rate
    stop = asyncio.Event()

    async def client() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        await asyncio.sleep(random.uniform(0, period))
        while not stop.is_set():
            began = time.monotonic()
            writer.write(b"GET /api/v1/x HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer abc\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            done[0] += 1
            await asyncio.sleep(max(0.0, period * random.uniform(0.5, 1.5) - (time.monotonic() - began)))
        writer.close()

    tasks = [asyncio.create_task(client()) for _ in range(connections)]
    await asyncio.sleep(warmup)
    cpu, count, started = process_cpu(pid), done[0], time.monotonic()
    await asyncio.sleep(seconds)
    cpu, count, elapsed = process_cpu(pid) - cpu, done[0] - count, time.monotonic() - started
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return count / elapsed, 1000 * cpu / max(count, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="default: deployed, nbthread 2")
    parser.add_argument("--delay", type=float, default=0.016, help="seconds a request holds a server's slot")
    parser.add_argument("--rate", type=float, default=450.0)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    args = parser.parse_args()
    haproxy = ensure_haproxy()
    if haproxy is None:
        sys.exit("haproxy is not installed and cannot be (apt-get install haproxy as root)")
    variants = args.variant or ["deployed", "nbthread 2"]
    threads = 4
    with tempfile.TemporaryDirectory(prefix="proxy-cpu-") as directory:
        workdir = Path(directory)
        (workdir / "slow_app.py").write_text(APP, encoding="utf-8")
        env = {**os.environ, "PROXY_BENCH_DELAY": str(args.delay), "HUB_WEB_THREADS": str(threads)}
        ports = [free_port(), free_port()]
        servers = []
        try:
            for index, port in enumerate(ports):
                command = [
                    str(Path(sys.executable).parent / "gunicorn"),
                    *("-c", str(GUNICORN_CONF), "--bind", f"{HOST}:{port}", "--chdir", directory, "slow_app:app"),
                ]
                servers.append(Process(f"app{index}", command, env, workdir))
            for server, port in zip(servers, ports, strict=True):
                wait_healthy(port, server, server.name)  # the app answers every path, /healthz too
            print(
                f"HAProxy {haproxy}, 2 gunicorn instances × {threads} threads, each request holding a slot "
                f"{args.delay * 1000:.0f} ms; {args.connections} kept connections offering {args.rate:.0f} req/s"
            )
            for round_ in range(1, args.rounds + 1):
                for name in variants:
                    config = workdir / "haproxy.cfg"
                    config.write_text(with_global(one_host_haproxy_cfg(ports), VARIANTS[name]), encoding="utf-8")
                    bind = free_port()
                    proxy_env = {**env, "HUB_PROXY_BIND": f"{HOST}:{bind}", "HUB_PROCESS_SLOTS": str(threads)}
                    proxy = Process("haproxy", [haproxy, "-db", "-f", str(config)], proxy_env, workdir)
                    try:
                        wait_healthy(bind, proxy, "haproxy")
                        rate, cpu = asyncio.run(
                            offer(bind, args.connections, args.rate, args.warmup, args.seconds, proxy.process.pid)
                        )
                    finally:
                        proxy.stop()
                    print(
                        f"round {round_} {name:<11} {rate:6.0f} req/s, HAProxy {cpu:.3f} ms CPU a request "
                        f"(load average {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()
