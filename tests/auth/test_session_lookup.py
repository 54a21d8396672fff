"""The browser session's lookup, run on every page (issue 17): one statement, built once, for the session, its user,
the user's professional and roles, with nothing of the session row in the unit of work; and the session's rules
(logout, deactivation, idle and absolute timeouts) still checked in the database at every request."""

import datetime as dt

import pytest
import time_machine
from sqlalchemy import select

from hub.db import utcnow
from hub.models import Profession, Role, UserRole, UserSession
from hub.services import accounts
from tests import factories
from tests.queries import forbid_lazy_loads, orm_executions, statements_on

LIMITS = accounts.SessionLimits(idle=dt.timedelta(minutes=30), absolute=dt.timedelta(hours=12))


@pytest.fixture(params=[accounts.resume_session, accounts.resume_session_light], ids=["entity", "light"])
def lookup(app, request):
    """The lookup as a request makes it: in a session of its own (an empty identity map), committed at the end; the
    entity's (every page) and the light page's Caller (hub.http.access.light_page), under the same rules."""

    def resume(token):
        with app.extensions["hub.sessions"]() as session:
            user = request.param(session, token, LIMITS)
            session.commit()
            return user

    return resume


def opened(db_session, user) -> str:
    token = accounts.start_session(db_session, user)
    db_session.commit()
    return token


def row_of(db_session, token) -> UserSession:
    return db_session.execute(
        select(UserSession).where(UserSession.id == accounts._digest(token)).execution_options(populate_existing=True)
    ).scalar_one()


def test_one_statement_built_once_for_the_session_its_user_professional_and_roles(app, engine, db_session, cpts):
    user = factories.clinician(db_session, cpts)  # the professional's role, a linked professional
    token = opened(db_session, user)
    with orm_executions() as (executed, entities):
        for _ in range(2):
            with app.extensions["hub.sessions"]() as session, statements_on(engine) as seen, forbid_lazy_loads():
                found = accounts.resume_session(session, token, LIMITS)
                # What the layout, the access rules and the policies read of current_user.
                read = (found.id, found.login, found.display_name, found.cpts_id, found.roles, found.professional.id)
            assert len(seen) == 1 and seen[0].startswith("SELECT"), seen
    assert read == (user.id, user.login, user.display_name, cpts.id, {Role.PROFESSIONAL}, user.professional_id)
    # The same statement object at each request (the old lookup built its select and options at every call), and
    # the session row read as columns, not as an entity of the unit of work.
    assert executed == [accounts._USER_OF_SESSION] * 2
    assert sorted(set(entities)) == ["Professional", "User", "UserRole"]


def test_the_light_lookup_is_one_statement_built_once_that_loads_no_entity(app, engine, db_session, cpts):
    user = factories.clinician(db_session, cpts, Profession.PHARMACIST)
    factories.user(db_session, cpts, Role.COORDINATOR)  # another account's roles are not its own
    user.role_rows.append(UserRole(role=Role.COORDINATOR))
    token = opened(db_session, user)
    with orm_executions() as (executed, entities), statements_on(engine) as seen:
        for _ in range(2):
            with app.extensions["hub.sessions"]() as session:
                found = accounts.resume_session_light(session, token, LIMITS)
    assert executed == [] and entities == [], (executed, entities)
    assert len(seen) == 2 and all(s.startswith("SELECT") for s in seen), seen
    assert isinstance(found, accounts.SessionCaller)
    assert (found.id, found.login, found.display_name, found.cpts_id, found.professional_id) == (
        user.id,
        user.login,
        user.display_name,
        cpts.id,
        user.professional_id,
    )
    assert (found.roles, found.profession) == ({Role.PROFESSIONAL, Role.COORDINATOR}, Profession.PHARMACIST)


def test_last_seen_is_touched_at_most_once_a_minute_by_one_update(engine, db_session, lookup, gp):
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        token = opened(db_session, gp)
        clock.move_to(start + dt.timedelta(seconds=59))
        with statements_on(engine) as seen:
            assert lookup(token) is not None
        assert len(seen) == 1
        clock.move_to(start + dt.timedelta(minutes=5))
        with statements_on(engine) as seen:
            assert lookup(token) is not None
        assert [s.split()[0] for s in seen] == ["SELECT", "UPDATE"]
        assert row_of(db_session, token).last_seen_at == start + dt.timedelta(minutes=5)


@pytest.mark.parametrize(
    ("minutes", "reason"), [(31, "idle_timeout"), (12 * 60 + 1, "absolute_timeout")], ids=["idle", "absolute"]
)
def test_an_expired_session_is_refused_and_ended(db_session, lookup, gp, minutes, reason):
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        token = opened(db_session, gp)
        if reason == "absolute_timeout":  # kept busy: only its age ends it
            for step in range(20, minutes, 20):
                clock.move_to(start + dt.timedelta(minutes=step))
                assert lookup(token) is not None
        clock.move_to(start + dt.timedelta(minutes=minutes))
        assert lookup(token) is None
        ended = row_of(db_session, token)
        assert (ended.end_reason, ended.ended_at) == (reason, start + dt.timedelta(minutes=minutes))
        assert lookup(token) is None


def test_logout_and_deactivation_refuse_at_the_next_lookup(db_session, lookup, cpts, gp):
    token, other = opened(db_session, gp), opened(db_session, gp)
    assert lookup(token) is not None
    accounts.end_session(db_session, token, reason="logout")
    db_session.commit()
    assert lookup(token) is None
    assert row_of(db_session, token).end_reason == "logout"
    assert lookup(other) is not None
    admin = factories.user(db_session, cpts, Role.ADMIN)
    accounts.deactivate_user(db_session, admin, gp)
    db_session.commit()
    assert lookup(other) is None
    assert row_of(db_session, other).end_reason == "deactivated"


def test_a_deactivated_user_with_a_session_still_open_is_refused_and_it_ends(db_session, lookup, gp):
    """A user turned inactive by another path than deactivate_user (which ends the sessions itself)."""
    token = opened(db_session, gp)
    gp.is_active = False
    db_session.commit()
    assert lookup(token) is None
    assert row_of(db_session, token).end_reason == "deactivated"


def test_an_unknown_token_is_refused(lookup):
    assert lookup("not-a-session") is None
