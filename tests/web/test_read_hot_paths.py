"""The read requests of the P7 load in a fixed number of statements and without lazy loads (issue 17 item 2):
each route is requested over a territory, then over the same territory three times larger; the statements it
sends must be as many, and no relationship or column may load on first access (tests/read_paths.py lists them).

The iCalendar feed is measured by bench/read_paths.py but its query belongs to P3 (bench/ical_feed.py)."""

import pytest
from sqlalchemy.orm import Session, selectinload

from hub.models import Patient
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
