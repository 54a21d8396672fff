"""Issue 17 item 2 (read paths): the read requests of the P7 load in process, statements and time per request.

On the database given by `--database-url` (default: SQLite in a temporary file; a PostgreSQL URL names a database
of its own, whose `public` schema is dropped and made again), the script migrates, builds the territory of
tests/read_paths.py with `--visits` sessions (their patients, reports, referrals, outbox messages) and requests each
route of the load as its user (session cookie for a page, Bearer token for the API) through the Flask test client,
on the territory's Monday morning: the statements of one request, then the median and the best of `--rounds`
requests (login check, audit line and commit included), wall-clock and CPU time of the process. The machine is
shared: print `uptime` beside the figures.

    .venv/bin/python bench/read_paths.py
    .venv/bin/python bench/read_paths.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_hf
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import time_machine  # noqa: E402
from sqlalchemy import event  # noqa: E402

from bench.common import prepare_postgresql  # noqa: E402 (needs the repository on sys.path)
from hub import create_app, migrate  # noqa: E402
from hub.db import make_engine  # noqa: E402
from tests import factories, read_paths  # noqa: E402
from tests.conftest import test_config  # noqa: E402


def _app(url: str):
    if url.startswith("postgresql"):
        prepare_postgresql(url)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return create_app(test_config(url))


def _statements(
    app, client, scene, route, *, show: bool = False, request=read_paths.request, statuses=(200, 304)
) -> int:
    """The statements one request sends (bench/write_paths.py passes its own `request` and each route's statuses)."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)

    engine = app.extensions["hub.engine"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = request(client, scene, route)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code in statuses, (route.name, response.status_code, response.get_data(as_text=True)[:200])
    for statement in seen if show else ():
        print("   ", " ".join(statement.split())[: int(os.environ.get("SHOW_WIDTH", 200))])
    return len(seen)


def _times(client, scene, route, rounds: int, *, request=read_paths.request, statuses=(200, 304)):
    """Wall-clock and CPU milliseconds of each request: on a shared machine the CPU time of the process is the
    steadier figure (on PostgreSQL it leaves out the server's work, which the statement count stands for)."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = request(client, scene, route)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        assert response.status_code in statuses, (route.name, response.status_code)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--visits", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--show", action="append", default=[], help="print the statements of this route")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, time_machine.travel(factories.NOW, tick=True):
        app = _app(args.database_url or f"sqlite:///{tmp}/read-paths.sqlite3")
        with app.extensions["hub.sessions"]() as session:
            scene = read_paths.build(session, factories.cpts(session), visits=args.visits)
        client = app.test_client()
        print(f"{args.database_url or 'sqlite'}: {args.visits} visits, {args.rounds} rounds; {os.getloadavg()=}")
        print(f"{'route':34} {'statements':>10} {'median ms':>10} {'best ms':>8} {'CPU median ms':>14}")
        for route in read_paths.ROUTES:
            _times(client, scene, route, 3)  # first use of a token, caches, the template compiled
            statements = _statements(app, client, scene, route, show=route.name in args.show)
            wall, cpu = _times(client, scene, route, args.rounds)
            print(
                f"{route.name:34} {statements:>10} {statistics.median(wall):>10.1f} {min(wall):>8.1f}"
                f" {statistics.median(cpu):>14.1f}"
            )
        app.extensions["hub.engine"].dispose()


if __name__ == "__main__":
    main()
