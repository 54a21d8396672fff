"""Issue 17, P7 item 4 (the report path): the specialist's four report requests of the P7 load in process —
POST the draft, PATCH it, POST …/sign, GET it — statements and time per request, through the Flask test client.

On the database given by `--database-url` (default: SQLite in a temporary file; a PostgreSQL URL names a database
of its own, whose `public` schema is dropped and made again), the script migrates, builds the territory of
tests/read_paths.py and `--rounds` more sessions done and without a report, then writes, signs and reads one report
per session as the P7 scenario does (bench/p7/locustfile.py): the statements of each request (first round) and the
median and best wall-clock and CPU milliseconds over the rounds. With `--render`, the worker's pass that renders the
signed reports' documents (reports.render_pending) is timed after the rounds: the cost that left the request.
The machine is shared: print the load beside the figures, run twice.

    .venv/bin/python bench/reports.py
    .venv/bin/python bench/reports.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_hc
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
from hub.models import AppointmentState  # noqa: E402
from tests import factories, read_paths  # noqa: E402
from tests.conftest import test_config  # noqa: E402

WRITTEN = {"acts": "Téléconsultation cardiologique, ECG lu à distance.", "conclusion": "Pas de décompensation."}
STEPS = ("POST report draft", "PATCH report", "POST sign", "GET report")
FIRST = 8  # the scene's own sessions; the bench's come after them in read_paths' calendar (84 at most)


def _app(url: str, upload_dir: str):
    if url.startswith("postgresql"):
        prepare_postgresql(url)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return create_app(test_config(url) | {"UPLOAD_DIR": upload_dir})


def _sessions_to_report(session, scene, rounds: int) -> list[int]:
    """`rounds` sessions of the cardiologist, done, each with its own patient and no report yet."""
    t = scene.territory
    ids = []
    for n in range(FIRST, FIRST + rounds):
        patient = factories.consenting_patient(
            session, t.cpts, recorded_by=t.coordinator, commune_insee="24571", phone="0612345678"
        )
        factories.in_care_team(session, patient, t.idel)
        ids.append(
            factories.visit(session, t, read_paths._starts(n), state=AppointmentState.DONE, patient_row=patient).id
        )
    session.commit()
    return ids


def _one_report(client, bearer: str, appointment_id: int, record) -> None:
    headers = {"Authorization": f"Bearer {bearer}"}
    draft = record(
        "POST report draft",
        lambda: client.post("/api/v1/reports", json={"appointment_id": appointment_id}, headers=headers),
    )
    report = draft.get_json()["id"]
    record("PATCH report", lambda: client.patch(f"/api/v1/reports/{report}", json=WRITTEN, headers=headers))
    record("POST sign", lambda: client.post(f"/api/v1/reports/{report}/sign", headers=headers))
    record("GET report", lambda: client.get(f"/api/v1/reports/{report}", headers=headers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--render", action="store_true", help="time the worker's rendering pass afterwards")
    parser.add_argument("--show", action="append", default=[], help="print the statements of this request")
    args = parser.parse_args()
    assert args.rounds + FIRST <= 84, "read_paths' calendar holds 84 sessions"
    with tempfile.TemporaryDirectory() as tmp, time_machine.travel(factories.NOW, tick=True):
        app = _app(args.database_url or f"sqlite:///{tmp}/reports.sqlite3", f"{tmp}/uploads")
        with app.extensions["hub.sessions"]() as session:
            scene = read_paths.build(session, factories.cpts(session), visits=FIRST)
            todo = _sessions_to_report(session, scene, args.rounds + 1)
        client = app.test_client()
        engine = app.extensions["hub.engine"]
        wall: dict[str, list[float]] = {step: [] for step in STEPS}
        cpu: dict[str, list[float]] = {step: [] for step in STEPS}
        statements: dict[str, int] = {}

        def record(step: str, call):
            seen: list[str] = []

            def count(_conn, _cursor, statement, *_args):
                seen.append(statement)

            event.listen(engine, "before_cursor_execute", count)
            started, started_cpu = time.perf_counter(), time.process_time()
            try:
                response = call()
            finally:
                event.remove(engine, "before_cursor_execute", count)
            wall[step].append((time.perf_counter() - started) * 1000)
            cpu[step].append((time.process_time() - started_cpu) * 1000)
            if step not in statements and step in args.show:
                print(step, *(f"    {' '.join(sql.split())[:200]}" for sql in seen), sep="\n")
            statements.setdefault(step, len(seen))
            assert response.status_code in (200, 201), (step, response.status_code, response.get_data(as_text=True))
            return response

        _one_report(client, scene.tokens["specialist"], todo[0], lambda _step, call: call())  # warm-up
        for appointment_id in todo[1:]:
            _one_report(client, scene.tokens["specialist"], appointment_id, record)
        print(f"{args.database_url or 'sqlite'}: {args.rounds} reports; {os.getloadavg()=}")
        print(f"{'request':20} {'statements':>10} {'median ms':>10} {'best ms':>8} {'CPU median ms':>14}")
        for step in STEPS:
            print(
                f"{step:20} {statements[step]:>10} {statistics.median(wall[step]):>10.1f} {min(wall[step]):>8.1f}"
                f" {statistics.median(cpu[step]):>14.1f}"
            )
        total = sum(statistics.median(wall[step]) for step in STEPS)
        print(f"{'the four, summed':20} {'':>10} {total:>10.1f}")
        if args.render:
            _render_pass(app, tmp, args.rounds + 1)
        engine.dispose()


def _render_pass(app, tmp: str, count: int) -> None:
    """The worker's rendering of the signed reports (their CDA, PDF and deliveries), timed per report."""
    from workflows import reports

    started, started_cpu = time.perf_counter(), time.process_time()
    outcome = reports.render_pending(
        app.extensions["hub.sessions"],
        upload_dir=Path(f"{tmp}/uploads"),
        zone=app.config["HUB"]["TIMEZONE"],
        limit=count,
    )
    elapsed = (time.perf_counter() - started) * 1000
    cpu = (time.process_time() - started_cpu) * 1000
    print(
        f"worker render pass: {outcome}; {elapsed:.0f} ms, {elapsed / count:.1f} ms per report;"
        f" CPU {cpu / count:.1f} ms per report"
    )


if __name__ == "__main__":
    main()
