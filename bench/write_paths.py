"""Issue 17 item 2 (write paths): the IDEL's and the specialist's requests of the P7 load in process, statements
and time per request: the appointment read, its confirmation, checklist and check-in, the report read, its
draft, its PATCH and its signature.

As bench/read_paths.py: on the database given by `--database-url` (default: SQLite in a temporary file; a
PostgreSQL URL names a database of its own, whose `public` schema is dropped and made again), the script migrates,
builds the territory of tests/write_paths.py (fresh sessions for each write that uses one up) and sends each
request as its user (Bearer token) through the Flask test client, on the territory's Monday morning: the
statements of one request, then the median and the best of `--rounds` requests (token lookup, audit line and
commit included), wall-clock and CPU time of the process (the best CPU time too: contention cannot lower it),
and the Python function calls of one request (steady where the times are not). The machine is shared: print
`uptime` beside the figures.

    .venv/bin/python bench/write_paths.py
    .venv/bin/python bench/write_paths.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_hf
"""

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import time_machine  # noqa: E402

from bench.read_paths import _app, _statements, _times  # noqa: E402 (needs the repository on sys.path)
from tests import factories, write_paths  # noqa: E402

WARMUP = 3


def _calls(client, scene, route) -> int:
    """The Python function calls of one request: unlike the times, the same from one run to the next on a shared
    machine, and what the process's CPU time follows once the statements are counted apart."""
    profile = cProfile.Profile()
    profile.enable()
    response = write_paths.request(client, scene, route)
    profile.disable()
    assert response.status_code in route.status, (route.name, response.status_code)
    return pstats.Stats(profile).total_calls  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--show", action="append", default=[], help="print the statements of this route")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, time_machine.travel(factories.NOW, tick=True):
        app = _app(args.database_url or f"sqlite:///{tmp}/write-paths.sqlite3")
        with app.extensions["hub.sessions"]() as session:
            # Each write that uses its session up needs one per request (the counted and the profiled ones too), plus
            # one left for the reads.
            scene = write_paths.build(session, factories.cpts(session), per_route=args.rounds + WARMUP + 3)
        client = app.test_client()
        print(f"{args.database_url or 'sqlite'}: {args.rounds} rounds; {os.getloadavg()=}")
        print(
            f"{'route':20} {'statements':>10} {'calls':>7} {'median ms':>10} {'best ms':>8}"
            f" {'CPU median ms':>14} {'CPU best ms':>12}"
        )
        for route in write_paths.ROUTES:
            mine = {"request": write_paths.request, "statuses": route.status}
            _times(client, scene, route, WARMUP - 1, **mine)  # first use of a token, caches
            statements = _statements(app, client, scene, route, show=route.name in args.show, **mine)
            calls = _calls(client, scene, route)
            wall, cpu = _times(client, scene, route, args.rounds, **mine)
            print(
                f"{route.name:20} {statements:>10} {calls:>7} {statistics.median(wall):>10.1f} {min(wall):>8.1f}"
                f" {statistics.median(cpu):>14.1f} {min(cpu):>12.2f}"
            )
        app.extensions["hub.engine"].dispose()


if __name__ == "__main__":
    main()
