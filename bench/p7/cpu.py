"""Where P7's CPU goes: each process kind's CPU per request over a step's steady part, read from /proc once a second.

The box runs everything (gunicorn, PostgreSQL, the worker, HAProxy and the load tool itself), so a step's verdict
is read beside who spent the two cores: a process's utime + stime (/proc/<pid>/stat), grouped by its command line,
and the cores' busy and idle time (/proc/stat), whose busy part no process accounts for is the kernel's own work
(interrupts, loopback packets). Linux only; elsewhere the sampler records nothing and the line is left out."""

import os
import threading
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Command-line fragments to the names printed, first match wins ("postgres: …" is a backend's title).
KINDS = (("gunicorn", "gunicorn"), ("postgres", "PostgreSQL"), ("hub worker", "the worker"), ("locust", "locust"))
KINDS += (("haproxy", "HAProxy"),)
OTHER, KERNEL, IDLE = "the rest", "kernel", "idle"


def _kind(command: bytes) -> str:
    text = command.replace(b"\0", b" ").decode(errors="replace")
    return next((name for fragment, name in KINDS if fragment in text), OTHER)


def _processes() -> dict[int, tuple[str, int]]:
    """pid → (kind, CPU ticks so far) of every process readable now."""
    seen = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
            command = Path(entry.path, "cmdline").read_bytes() or stat[stat.find(b"(") + 1 : stat.rfind(b")")]
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        seen[int(entry.name)] = (_kind(command), int(fields[11]) + int(fields[12]))
    return seen


def _cores() -> tuple[int, int]:
    """(busy, idle) ticks of all cores so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, idle, iowait, irq, softirq = values
    return user + nice + system + irq + softirq, idle + iowait


class CpuSampler:
    """A thread taking, once a second, each kind's CPU seconds spent since the last sample (a process that started
    meanwhile counts whole), with the time it was taken (time.time(), locust's clock)."""

    def __init__(self, every: float = 1.0):
        self.every = every
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="p7-cpu", daemon=True)

    def __enter__(self) -> "CpuSampler":
        if Path("/proc/stat").exists():
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        before, cores = _processes(), _cores()
        while not self._stop.wait(self.every):
            now, now_cores = _processes(), _cores()
            spent: dict[str, float] = {}
            for pid, (kind, ticks) in now.items():
                previous = before.get(pid)
                spent[kind] = spent.get(kind, 0.0) + (ticks - (previous[1] if previous else 0)) / TICKS
            busy, idle = ((b - a) / TICKS for a, b in zip(cores, now_cores, strict=True))
            spent[KERNEL] = max(0.0, busy - sum(spent.values()))
            spent[IDLE] = idle
            self.samples.append((time.time(), spent))
            before, cores = now, now_cores

    def per_request(self, began: float, ended: float, requests: float) -> str | None:
        """Each kind's CPU milliseconds per request between two times (`requests` served meanwhile), and the cores'
        idle share; None without samples there."""
        window = [spent for taken, spent in self.samples if began < taken <= ended]
        if not window or requests <= 0:
            return None
        totals: dict[str, float] = {}
        for spent in window:
            for kind, seconds in spent.items():
                totals[kind] = totals.get(kind, 0.0) + seconds
        idle = totals.pop(IDLE, 0.0)
        cores = idle + sum(totals.values())
        names = [name for _fragment, name in KINDS] + [OTHER, KERNEL]
        parts = ", ".join(f"{name} {totals.get(name, 0.0) * 1000 / requests:.2f}" for name in names)
        return f"{parts} ms; cores idle {idle / cores:.0%}" if cores else parts + " ms"
