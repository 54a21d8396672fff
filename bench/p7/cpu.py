"""Where P7's CPU goes: each process kind's CPU per request over a step's steady part, read from /proc once a second.

The box runs everything (gunicorn, PostgreSQL, the worker, HAProxy and the load tool itself), so a step's verdict
is read beside who spent the two cores: a process's utime + stime (/proc/<pid>/stat), grouped by its command line,
and the cores' busy, idle and stolen time (/proc/stat), whose busy part no process accounts for is the kernel's own
work (interrupts, loopback packets) and the last second of processes that ended. The bench's own process (the SMTP
sink that receives the worker's e-mails, this sampler) is a kind of its own. Given the database's URL, it also tells
the PostgreSQL backends serving the worker from the others, by the name they connect under (pg_stat_activity's
application_name: the units' PGAPPNAME, which bench/p7/layout.py gives the processes it starts). The samples are
taken on the second of time.time() and locust's history is written on its whole second: a window's CPU and its
requests are offset by up to a second at each end (≤ 5 % of a 40 s step). Linux only; elsewhere the sampler records
nothing and the line is left out."""

import contextlib
import csv
import os
import threading
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Command-line fragments to the names printed, first match wins (KINDS). A PostgreSQL backend's title starts its
# command line ("postgres: user db host state"); the bench's own command line names the database's URL, so it is told
# by its pid.
POSTGRES, POSTGRES_WORKER, BENCH = "PostgreSQL", "PostgreSQL for the worker", "the bench (SMTP sink)"
WORKER_APPLICATION = "cpts-hub-worker"  # deploy/systemd/cpts-hub-worker.service's PGAPPNAME
KINDS = (("gunicorn", "gunicorn"), ("hub worker", "the worker"), ("locust", "locust"), ("haproxy", "HAProxy"))
OTHER, KERNEL, IDLE, STOLEN = "the rest", "kernel", "idle", "stolen"
ORDER = ("gunicorn", POSTGRES, "the worker", POSTGRES_WORKER, "locust", "HAProxy", BENCH, OTHER, KERNEL)


def _kind(pid: int, command: bytes, backends: dict[int, str]) -> str:
    if pid == os.getpid():
        return BENCH
    text = command.replace(b"\0", b" ").decode(errors="replace")
    if text.startswith("postgres"):
        application = backends.get(pid, "")
        if application == WORKER_APPLICATION:
            return POSTGRES_WORKER
        return BENCH if application == SAMPLER_APPLICATION else POSTGRES
    return next((name for fragment, name in KINDS if fragment in text), OTHER)


SAMPLER_APPLICATION = "p7-cpu-sampler"


def _processes(backends: dict[int, str]) -> dict[int, tuple[str, int]]:
    """pid → (kind, CPU ticks so far) of every process readable now; `backends`: PostgreSQL's pid → application."""
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
        pid = int(entry.name)
        seen[pid] = (_kind(pid, command, backends), int(fields[11]) + int(fields[12]))
    return seen


def _cores() -> tuple[int, int, int]:
    """(busy, idle, stolen) ticks of all cores so far: stolen is the time the host gave this machine's cores to
    others, the first suspect when the same work costs more."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = values
    return user + nice + system + irq + softirq, idle + iowait, steal


class CpuSampler:
    """A thread taking, once a second, each kind's CPU seconds spent since the last sample (a process that started
    meanwhile counts whole), with the time it was taken (time.time(), locust's clock)."""

    def __init__(self, pg_url: str | None = None, every: float = 1.0):
        self.every = every
        self.pg_url = pg_url
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
        with self._database() as backends:
            before, cores = _processes(backends()), _cores()
            while not self._stop.wait(self.every):
                now, now_cores = _processes(backends()), _cores()
                self._sample(before, cores, now, now_cores)
                before, cores = now, now_cores

    @contextlib.contextmanager
    def _database(self):
        """A function reading PostgreSQL's backends and their application names (empty without a URL)."""
        if not self.pg_url:
            yield dict
            return
        import psycopg

        url = self.pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, autocommit=True, application_name=SAMPLER_APPLICATION) as connection:
            query = "SELECT pid, application_name FROM pg_stat_activity WHERE backend_type = 'client backend'"
            yield lambda: dict(connection.execute(query).fetchall())

    def _sample(self, before, cores, now, now_cores) -> None:
        """Each kind's CPU seconds between two readings (a process that started meanwhile counts whole; a
        backend whose application changed is counted under its new one)."""
        spent: dict[str, float] = {}
        for pid, (kind, ticks) in now.items():
            previous = before.get(pid)
            spent[kind] = spent.get(kind, 0.0) + (ticks - (previous[1] if previous else 0)) / TICKS
        busy, idle, stolen = ((b - a) / TICKS for a, b in zip(cores, now_cores, strict=True))
        spent[KERNEL] = busy - sum(spent.values())  # may dip below 0 in a sample; clamped over a window
        spent[IDLE], spent[STOLEN] = idle, stolen
        self.samples.append((time.time(), spent))

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
        idle, stolen = totals.pop(IDLE, 0.0), totals.pop(STOLEN, 0.0)
        totals[KERNEL] = max(0.0, totals.get(KERNEL, 0.0))
        cores = idle + stolen + sum(totals.values())
        parts = ", ".join(f"{name} {totals.get(name, 0.0) * 1000 / requests:.2f}" for name in ORDER)
        if not cores:
            return parts + " ms"
        return f"{parts} ms; cores idle {idle / cores:.0%}, stolen by the host {stolen / cores:.0%}"

    def write_csv(self, path: Path) -> None:
        """Every sample, a line a second (time, then each kind's CPU seconds): the steps read second by second."""
        kinds = [*ORDER, IDLE, STOLEN]
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["time", *kinds])
            for taken, spent in self.samples:
                writer.writerow([f"{taken:.1f}", *(f"{spent.get(kind, 0.0):.3f}" for kind in kinds)])
