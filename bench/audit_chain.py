"""The audit chain's costs that the unchained-row markers (issue 17, item 1 review) change, and the verification's
speed that the administrator's page quotes.

1. A request's audit write (one row, `audit.record` then `COMMIT`), with the trigger that marks the row unchained
   and without it (baseline: the trigger disabled), in alternating blocks of the same run.
2. The sequencer finding the rows to chain in a table of `--rows` chained events with one late row pending: the
   markers' join against the previous look-back query (unchained among the last 10,000 ids, which misses an older
   late row) and the full anti-join that `verify` uses (which finds it, by scanning every event).
3. `verify` over the whole chain: rows per second.

    .venv/bin/python bench/audit_chain.py --rows 100000 --pg-url postgresql+psycopg://postgres@127.0.0.1/bench_x
"""

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import exists, func, insert, select, text  # noqa: E402

from bench.common import prepare_postgresql  # noqa: E402 (needs the repository on sys.path)
from hub import audit, migrate  # noqa: E402
from hub.db import make_engine, make_session_factory  # noqa: E402
from hub.models import AuditEvent, AuditLink  # noqa: E402

KEY = audit.DEVELOPMENT_KEY
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_audit_chain"
LOOK_BACK_IDS = 10_000  # the previous sequencer's window


def set_trigger(engine, enabled: bool) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            verb = "ENABLE" if enabled else "DISABLE"
            conn.execute(text(f"ALTER TABLE audit_events {verb} TRIGGER audit_events_mark_unchained"))
        elif enabled:
            conn.execute(
                text(
                    "CREATE TRIGGER audit_events_mark_unchained AFTER INSERT ON audit_events "
                    "BEGIN INSERT INTO audit_unchained (event_id) VALUES (NEW.id); END"
                )
            )
        else:
            conn.execute(text("DROP TRIGGER audit_events_mark_unchained"))


def audit_writes(sessions, count: int) -> float:
    """Milliseconds per transaction writing one audit row."""
    started = time.perf_counter()
    for number in range(count):
        with sessions() as session:
            audit.record(session, actor="bench", action="patient.read", target=("patients", number))
            session.commit()
    return (time.perf_counter() - started) * 1000 / count


def fill(engine, rows: int) -> None:
    now = dt.datetime.now(dt.UTC)
    row = {"occurred_at": now, "actor_label": "bench", "action": "patient.read", "outcome": "success", "details": "{}"}
    with engine.begin() as conn:
        for _ in range(rows // 10_000):
            conn.execute(insert(AuditEvent), [row] * 10_000)


def timed(sessions, statement, repeat: int = 20) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        with sessions() as session:
            started = time.perf_counter()
            result = session.execute(statement).all()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def run(url: str, rows: int, writes: int) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    name = engine.dialect.name
    print(f"== {name}")

    # 1. The request's audit write, with and without the marking trigger: alternating blocks, best of each.
    audit_writes(sessions, 200)  # warm-up
    for round_number in (1, 2):
        times: dict[bool, list[float]] = {False: [], True: []}
        for enabled in (False, True, False, True):
            set_trigger(engine, enabled)
            times[enabled].append(audit_writes(sessions, writes))
        without, with_marker = min(times[False]), min(times[True])
        print(
            f"audit write, run {round_number}: {without:.3f} ms without the trigger, {with_marker:.3f} ms with it "
            f"(ratio {with_marker / without:.2f}, {(with_marker - without) * 1000:+.0f} µs)"
        )

    with engine.begin() as conn:  # the rows written without the trigger: marked as the migration does
        conn.execute(
            text(
                "INSERT INTO audit_unchained (event_id) SELECT id FROM audit_events WHERE NOT EXISTS "
                "(SELECT 1 FROM audit_chain WHERE audit_chain.event_id = audit_events.id) "
                "AND NOT EXISTS (SELECT 1 FROM audit_unchained u WHERE u.event_id = audit_events.id)"
            )
        )

    # 2. Finding what to chain: `rows` chained events, then a row whose id was taken LOOK_BACK_IDS + 5,000 ids
    # before the last one chained commits (its id left free, then inserted explicitly: a late transaction).
    fill(engine, rows)
    with sessions() as session:
        top = session.scalar(select(func.max(AuditEvent.id)))
    late = top - LOOK_BACK_IDS - 5_000
    with engine.begin() as conn:
        if name == "postgresql":
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        conn.execute(text("DELETE FROM audit_unchained WHERE event_id = :id"), {"id": late})
        conn.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": late})
        if name == "postgresql":
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))
    audit.run_sequencer(sessions, key=KEY, checkpoint_file=None)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (id, occurred_at, actor_label, action, outcome, details) "
                "VALUES (:id, :at, 'bench', 'late', 'success', '{}')"
            ),
            {"id": late, "at": dt.datetime.now(dt.UTC)},
        )
        if name == "postgresql":
            conn.execute(text("ANALYZE"))
    unlinked = ~exists().where(AuditLink.event_id == AuditEvent.id)
    markers_ms, found = timed(sessions, audit.pending_events())
    assert [r.id for r in found] == [late]
    last_chained = select(func.max(AuditLink.event_id)).scalar_subquery()
    window_ms, found_window = timed(
        sessions, select(AuditEvent.id).where(unlinked, AuditEvent.id > last_chained - LOOK_BACK_IDS)
    )
    full_ms, found_full = timed(sessions, select(AuditEvent.id).where(unlinked), repeat=5)
    print(
        f"finding the pending rows among {rows} chained: markers {markers_ms:.3f} ms (found the late row), "
        f"previous look-back {window_ms:.3f} ms (found {len(found_window)}: "
        f"{'missed the late row' if not found_window else 'found it'}), full anti-join {full_ms:.1f} ms "
        f"(found {len(found_full)}); markers / look-back = {markers_ms / window_ms:.2f}"
    )

    # 3. The verification's speed, for the page's advice.
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        _linked, result = audit.seal_and_verify(sessions, key=KEY, checkpoint_file=Path(folder) / "c.jsonl")
        seconds = time.perf_counter() - started
    print(
        f"seal_and_verify over {result.length} links: {seconds:.2f} s, {result.length / seconds:,.0f} links/s "
        f"({len(result.breaks)} break(s))"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rows", type=int, default=100_000, help="chained events (default 100,000)")
    parser.add_argument("--writes", type=int, default=1_000, help="audit writes per block (default 1,000)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    if args.database in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            run(f"sqlite:///{folder}/bench.sqlite3", args.rows, args.writes)
    if args.database in ("postgresql", "both"):
        prepare_postgresql(args.pg_url)
        run(args.pg_url, args.rows, args.writes)


if __name__ == "__main__":
    main()
