"""`GET /api/v1/outbox/status`: whether the worker keeps up with the CPTS's messages (the backlog's rules are
tests/web/test_outbox_backlog_pages.py's); for the coordination and the admin, problem+json for anyone else."""

import pytest

from hub.db import utcnow
from hub.services import accounts
from tests import factories
from tests.api.test_desk_api import light_statements
from tests.api.test_patients_api import assert_problem
from tests.web.test_outbox_backlog_pages import FRESH, LATE, due, on_time_noise


def test_the_status_says_when_the_worker_is_behind(api_as, db_session, coordinator, cpts):
    on_time_noise(db_session, cpts)
    oldest = due(db_session, cpts, LATE)
    due(db_session, cpts, FRESH)
    due(db_session, factories.cpts(db_session), LATE * 3)  # another CPTS's
    db_session.commit()

    response = api_as(coordinator).get("/api/v1/outbox/status")

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body == {
        "waiting": 2,
        "oldest_waiting_since": oldest.next_attempt_at.isoformat(),
        "oldest_waiting_seconds": body["oldest_waiting_seconds"],
        "alert_after_minutes": 15,
        "late": True,
    }
    assert LATE.total_seconds() <= body["oldest_waiting_seconds"] < LATE.total_seconds() + 60


def test_fresh_messages_are_not_late(api_as, db_session, admin, cpts):
    on_time_noise(db_session, cpts)
    due(db_session, cpts, FRESH)
    due(db_session, factories.cpts(db_session), LATE)
    db_session.commit()

    body = api_as(admin).get("/api/v1/outbox/status").get_json()

    assert (body["waiting"], body["late"]) == (1, False)
    assert 0 <= body["oldest_waiting_seconds"] < 10 * 60


def test_nothing_waiting(api_as, coordinator):
    body = api_as(coordinator).get("/api/v1/outbox/status").get_json()
    assert body == {
        "waiting": 0,
        "oldest_waiting_since": None,
        "oldest_waiting_seconds": 0,
        "alert_after_minutes": 15,
        "late": False,
    }


@pytest.mark.parametrize("role", ["gp", "nurse"])
def test_the_professionals_may_not_read_it(request, api_as, role):
    assert_problem(api_as(request.getfixturevalue(role)).get("/api/v1/outbox/status"), 403)


def test_a_light_read_of_two_statements(app, committed):
    """The token's caller and the backlog's one SELECT; none inside a transaction, no lazy load, no audit row."""
    factory, created = committed
    with factory() as session:
        cpts = factories.cpts(session)
        created.append(cpts.id)
        coordinator = factories.coordinator(session, cpts)
        factories.outbox_message(session, cpts, next_attempt_at=utcnow() - LATE)
        _token, raw = accounts.create_api_token(session, coordinator, name="supervision")
        session.commit()
    client, headers = app.test_client(), {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/outbox/status", headers=headers).status_code == 200  # the token's first use is stamped
    seen, response = light_statements(app, client, "/api/v1/outbox/status", headers)
    assert response.status_code == 200 and response.get_json()["late"] is True
    assert len(seen) == 2 and all(statement.startswith("SELECT") for statement, _ in seen), seen
    assert all(outside for _, outside in seen), seen
