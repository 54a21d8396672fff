"""The pages P7 reads most, the coordinator's week planning and « Mes visites », are `light_page`s (issue 17, branch
hu-pagepath): their session cookie resolves to an `accounts.SessionCaller` read by one Core SELECT, no ORM row of
the account is loaded, their HTML is the one they had under the `User` entity (the menu of a GP, the pharmacist's
officine section included), and the session's rules still stop them at once."""

from contextlib import contextmanager

import pytest
from flask import g, request_finished
from sqlalchemy import update

from hub.db import utcnow
from hub.models import User, UserSession
from hub.services import accounts
from tests import factories
from tests.queries import orm_executions
from tests.web.test_planning_pages import text

pytestmark = pytest.mark.usefixtures("clock")

WEEK = "/planning?week=2026-11-23"


@contextmanager
def principals(app):
    """Who each request of the block ran as (flask-login's user, as the view saw it)."""
    seen: list = []

    def keep(_sender, **_extra):
        seen.append(g.get("_login_user"))

    request_finished.connect(keep, app)
    try:
        yield seen
    finally:
        request_finished.disconnect(keep, app)


@pytest.fixture
def pharmacist(db_session, territory):
    _organisation, user = factories.officine(db_session, territory.cpts, last_name="Reynaud", email="ph@example.org")
    db_session.commit()
    return user


@pytest.fixture
def who(request, territory, gp, pharmacist):
    return {
        "coordinator": territory.coordinator,
        "idel": territory.idel_user,
        "gp": gp,
        "pharmacist": pharmacist,
    }[request.param]


PAGES = [("coordinator", WEEK), ("idel", "/visits"), ("gp", "/visits"), ("pharmacist", "/visits")]


@pytest.mark.parametrize(("who", "path"), PAGES, indirect=["who"])
def test_a_light_page_runs_as_the_session_caller_and_loads_no_account_row(app, auth, visit, pharmacist, who, path):
    auth.login(who)
    with principals(app) as seen, orm_executions() as (_executed, entities):
        response = auth.client.get(path)
    assert response.status_code == 200
    assert [type(p) for p in seen] == [accounts.SessionCaller]
    assert (seen[0].id, seen[0].display_name, seen[0].roles) == (who.id, who.display_name, who.roles)
    assert not {"User", "UserRole"} & set(entities), entities
    # The pharmacist's officine section reads their professional's row; no one else's page does.
    assert ("Professional" in entities) == (who is pharmacist), entities


@pytest.mark.parametrize(("who", "path"), PAGES, indirect=["who"])
def test_a_light_page_is_the_page_it_was_under_the_user_entity(app, auth, visit, monkeypatch, who, path):
    auth.login(who)
    light = text(auth.client.get(path))
    monkeypatch.setattr(app.view_functions[app.url_map.bind("").match(path.split("?")[0])[0]], "light_page", False)
    with principals(app) as seen:
        heavy = text(auth.client.get(path))
    assert [type(p) for p in seen] == [User]
    assert light == heavy
    assert who.display_name in light


@pytest.mark.parametrize(
    "stop",
    [
        lambda session, token, user: accounts.end_session(session, token, reason="logout"),
        lambda session, token, user: setattr(user, "is_active", False),
        lambda session, token, user: session.execute(
            update(UserSession)
            .where(UserSession.id == accounts._digest(token))
            .values(last_seen_at=utcnow() - accounts.TOUCH_INTERVAL * 1000)
        ),
    ],
    ids=["logout", "deactivated", "idle"],
)
def test_a_light_page_stops_at_once_when_its_session_does(auth, db_session, territory, stop):
    token = auth.login(territory.coordinator)
    assert auth.client.get(WEEK).status_code == 200
    stop(db_session, token, territory.coordinator)
    db_session.commit()
    response = auth.client.get(WEEK)
    assert response.status_code in (302, 401), response.status_code
    assert "/login" in response.headers.get("Location", "/login")
