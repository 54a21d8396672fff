"""The API token's lookup (`accounts.authenticate_token_light`, every API view's since issue 17, branch hk-caller):
one Core SELECT, built once, gives an `accounts.Caller` without loading any ORM row, and the token's rules
(revocation, the user's deactivation) are checked in the database at every lookup. Through the API, the writing
calls included: tests/api/test_caller.py."""

import pytest

from hub.db import utcnow
from hub.models import Role
from hub.services import accounts
from tests import factories
from tests.queries import orm_executions, statements_on


def test_one_statement_built_once_and_no_entity(app, engine, db_session, cpts):
    user = factories.clinician(db_session, cpts)
    _token, raw = accounts.create_api_token(db_session, user, name="logiciel")
    db_session.commit()
    with orm_executions() as (_executed, entities):
        for _ in range(2):
            with app.extensions["hub.sessions"]() as session, statements_on(engine) as seen:
                found = accounts.authenticate_token_light(session, raw)
                session.commit()  # the first use touches last_used_at, the second finds it fresh
            assert seen[0].startswith("SELECT") and all(not s.startswith("SELECT") for s in seen[1:]), seen
    assert found == accounts.Caller(user.id, user.login, cpts.id, user.professional_id, frozenset({Role.PROFESSIONAL}))
    assert entities == []


def test_a_revoked_token_or_a_deactivated_user_is_refused(app, db_session, cpts):
    revoked, kept = factories.clinician(db_session, cpts), factories.clinician(db_session, cpts)
    revoked_row, revoked_raw = accounts.create_api_token(db_session, revoked, name="révoqué")
    _row, kept_raw = accounts.create_api_token(db_session, kept, name="gardé")
    db_session.commit()
    with app.extensions["hub.sessions"]() as session:
        assert accounts.authenticate_token_light(session, revoked_raw).id == revoked.id
        assert accounts.authenticate_token_light(session, accounts.TOKEN_PREFIX + "x" * 43) is None
    revoked_row.revoked_at = utcnow()
    kept.is_active = False
    db_session.commit()
    with app.extensions["hub.sessions"]() as session:
        assert accounts.authenticate_token_light(session, revoked_raw) is None
        assert accounts.authenticate_token_light(session, kept_raw) is None


def test_a_caller_read_for_the_accounts_rows_loads_them_and_warns(app, db_session, cpts, caplog, monkeypatch):
    """In production, a service reading `user.professional` from a view not marked `needs_account` gets it (one read
    later), not a 500; the warning names the omission. Never the credentials. What neither a Caller nor a User has
    stays an AttributeError. Under the tests (strict) the read fails, so that the missing mark is found."""
    user = factories.clinician(db_session, cpts)
    _token, raw = accounts.create_api_token(db_session, user, name="logiciel")
    db_session.commit()
    with app.extensions["hub.sessions"]() as session:
        caller = accounts.authenticate_token_light(session, raw)
        with pytest.raises(RuntimeError, match="needs_account"):
            caller.professional  # noqa: B018 (the read is the test)
        monkeypatch.setattr(accounts.Caller, "strict", False)
        assert caller.professional.id == user.professional_id
        assert "needs_account" in caplog.text
        with pytest.raises(AttributeError):
            caller.password_hash  # noqa: B018
        with pytest.raises(AttributeError):
            caller.no_such_attribute  # noqa: B018 (the read is the test)
        assert getattr(caller, "_get_current_object", None) is None  # hub.audit's probe: no account read
