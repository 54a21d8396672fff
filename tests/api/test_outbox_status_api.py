"""`GET /api/v1/outbox/status`: whether the worker keeps up with the CPTS's messages (the backlog's rules are
tests/web/test_outbox_backlog_pages.py's); for the coordination and the admin, problem+json for anyone else."""

import datetime as dt

import pytest

from hub.db import utcnow
from hub.models import Role
from hub.schemas.outbox import OutboxStatusOut, outbox_status, outbox_status_json
from hub.services import accounts, outbox_messages
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


def test_the_status_is_outbox_status_out_s_dump(db_session, cpts):
    """The JSON built by hand is what the documented schema (OpenAPI's OutboxStatusOut) dumps, field for field."""
    due(db_session, cpts, LATE)
    db_session.commit()
    alert_after = dt.timedelta(minutes=15)
    for backlog in (
        outbox_messages.backlog(db_session, cpts.id, now=utcnow()),
        outbox_messages.Backlog(0, None, utcnow()),
    ):
        body = outbox_status_json(backlog, alert_after)
        assert set(body) == set(OutboxStatusOut().fields)
        assert body == OutboxStatusOut().dump(outbox_status(backlog, alert_after))


def test_the_desk_gives_the_same_status(api_as, db_session, cpts):
    """A coordination's client finds on GET /me/desk the backlog its page warns about, in the coordinator's and the
    admin's parts alike, as GET /outbox/status gives it."""
    both = factories.user(db_session, cpts, Role.COORDINATOR, Role.ADMIN)
    oldest = due(db_session, cpts, LATE)
    due(db_session, factories.cpts(db_session), LATE * 3)  # another CPTS's
    db_session.commit()

    client = api_as(both)
    body = client.get("/api/v1/me/desk").get_json()
    status = client.get("/api/v1/outbox/status").get_json()

    expected = {
        "waiting": 1,
        "oldest_waiting_since": oldest.next_attempt_at.isoformat(),
        "alert_after_minutes": 15,
        "late": True,
    }
    for part in (body["coordinator"]["send_backlog"], body["admin"]["send_backlog"], status):
        assert LATE.total_seconds() <= part.pop("oldest_waiting_seconds") < LATE.total_seconds() + 60
        assert part == expected
