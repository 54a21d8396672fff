"""The read requests of the P7 load in a fixed number of statements and without lazy loads (issue 17 item 2):
each route is requested over a territory, then over the same territory three times larger; the statements it
sends must be as many, and no relationship or column may load on first access (tests/read_paths.py lists them).

The iCalendar feed is measured by bench/read_paths.py but its query belongs to P3 (bench/ical_feed.py)."""

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, selectinload

from hub.models import Patient
from hub.services import outbox_messages
from tests import factories, read_paths
from tests.queries import LazyLoad, count_queries, forbid_lazy_loads

pytestmark = pytest.mark.usefixtures("clock")

SMALL, MORE = 4, 8
_TRANSACTION = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
CHECKED = [route for route in read_paths.ROUTES if route.name != "GET ical"]


def _statements(client, engine, scene, route) -> list[str]:
    read_paths.request(client, scene, route)  # the token's first use stamps it: not the steady state
    with forbid_lazy_loads() as lazy, count_queries(engine) as seen:
        response = read_paths.request(client, scene, route)
    assert not lazy, "\n".join(lazy)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return [s for s in seen if not s.startswith(_TRANSACTION)]


@pytest.mark.parametrize("route", CHECKED, ids=[route.name for route in CHECKED])
def test_statements_do_not_grow_with_the_rows_and_nothing_loads_lazily(client, engine, db_session, cpts, route):
    scene = read_paths.build(db_session, cpts, visits=SMALL)
    small = _statements(client, engine, scene, route)
    read_paths.enlarge(db_session, scene, visits=MORE)
    large = _statements(client, engine, scene, route)
    assert len(large) == len(small), "\n".join(statement[:150] for statement in large)


def test_forbid_lazy_loads_refuses_a_lazy_load_and_lets_an_eager_one_pass(db_session, cpts, coordinator):
    patient = factories.consenting_patient(db_session, cpts, recorded_by=coordinator)
    db_session.commit()
    # The lazy load raises where it happens, and the block fails at its end even when the code swallowed it.
    with (
        pytest.raises(AssertionError, match="lazy loads"),
        Session(bind=db_session.connection()) as fresh,
        forbid_lazy_loads() as lazy,
    ):
        eager = fresh.get(Patient, patient.id, options=[selectinload(Patient.consents)])
        assert eager is not None and len(eager.consents) == 1
        fresh.expunge_all()
        row = fresh.get(Patient, patient.id)
        assert row is not None
        with pytest.raises(LazyLoad, match=r"Patient\.consents"):
            _ = row.consents
    assert len(lazy) == 1


def test_the_outbox_list_reads_a_page_and_its_count_on_the_cpts_index(db_session, cpts):
    """The count and the page's ids come from the (cpts_id, id) index alone (no table read, no sort of all the
    CPTS's messages, however far down the page); then only the page's rows are read, newest first."""
    other = factories.cpts(db_session, name="Autre CPTS")
    mine = []
    for _ in range(30):
        mine.append(factories.outbox_message(db_session, cpts).id)
        factories.outbox_message(db_session, other)
    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _executemany):
        seen.append((statement, parameters))

    connection = db_session.connection()
    event.listen(connection, "before_cursor_execute", record)
    try:
        lines, total = outbox_messages.list_messages(db_session, cpts.id, page=2, per_page=10)
    finally:
        event.remove(connection, "before_cursor_execute", record)
    assert total == 30 and [line.message.id for line in lines] == sorted(mine, reverse=True)[10:20]
    sqlite = connection.dialect.name == "sqlite"
    if not sqlite:
        # A handful of rows: forbid the sequential scan, as on a table of thousands; and the bitmap scan, which the
        # planner prefers once the suite's other tests have left the table's statistics behind (it reads the index
        # too, but says less about the order the page needs).
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
    for statement, parameters in seen:
        explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        plan = " ".join(str(row) for row in connection.exec_driver_sql(explain + statement, parameters))
        if sqlite:
            assert "COVERING INDEX ix_outbox_messages_cpts_id_id" in plan and "TEMP B-TREE" not in plan, plan
        else:
            # The page's ids in the index's order (the page's rows may then be sorted: twenty of them).
            # Index Only Scan once the table is vacuumed; a plain Index Scan while its rows are not yet all-visible.
            assert "Scan Backward using ix_outbox_messages_cpts_id_id" in plan, plan
            # The count, the page's last column, scans it forward.
            assert "Scan using ix_outbox_messages_cpts_id_id" in plan, plan


def test_the_coordinators_home_page_reads_its_desk_in_nine_statements(client, engine, db_session, cpts):
    """The session, the counts (the late reports' rendering and sending among them), the first visits waiting for
    their IDEL and without one, the late signatures' candidates, the coming sessions, the freed slots (no waiting
    list read when there is none), the first to book again, the audit row. It was twelve: the late reports in three
    statements of entities, the waiting list read for no freed slot."""
    scene = read_paths.build(db_session, cpts, visits=SMALL)
    route = next(route for route in read_paths.ROUTES if route.name == "page / (coordinator)")
    seen = [s for s in _statements(client, engine, scene, route) if not s.startswith("BEGIN")]
    assert len(seen) == 9, "\n".join(statement[:150] for statement in seen)
    assert not any(statement.startswith("SELECT waiting_entries") for statement in seen)
