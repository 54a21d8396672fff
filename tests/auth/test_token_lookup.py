"""The API token's lookup for the views that need the user as an ORM row (every API call that writes, issue 17):
one statement, built once, for the token, its user, the linked professional and the roles; and the token's rules
(revocation, the user's deactivation) still checked in the database at every request."""

from hub.db import utcnow
from hub.models import Role
from hub.services import accounts
from tests import factories
from tests.queries import forbid_lazy_loads, orm_executions, statements_on


def test_one_statement_built_once_for_the_token_its_user_professional_and_roles(app, engine, db_session, cpts):
    user = factories.clinician(db_session, cpts)
    _token, raw = accounts.create_api_token(db_session, user, name="logiciel")
    db_session.commit()
    with orm_executions() as (executed, entities):
        for _ in range(2):
            with app.extensions["hub.sessions"]() as session, statements_on(engine) as seen, forbid_lazy_loads():
                found = accounts.authenticate_token(session, raw)
                read = (found.id, found.login, found.cpts_id, found.roles, found.professional_id)
                session.commit()  # the first use touches last_used_at, the second finds it fresh
            assert seen[0].startswith("SELECT") and all(not s.startswith("SELECT") for s in seen[1:]), seen
    assert read == (user.id, user.login, cpts.id, {Role.PROFESSIONAL}, user.professional_id)
    # The same statement object at each request: the lookup built its select and loader options at every call.
    assert executed == [accounts._TOKEN_WITH_USER] * 2
    assert sorted(set(entities)) == ["ApiToken", "Professional", "User", "UserRole"]


def test_a_revoked_token_or_a_deactivated_user_is_refused(app, db_session, cpts):
    revoked, kept = factories.clinician(db_session, cpts), factories.clinician(db_session, cpts)
    revoked_row, revoked_raw = accounts.create_api_token(db_session, revoked, name="révoqué")
    _row, kept_raw = accounts.create_api_token(db_session, kept, name="gardé")
    db_session.commit()
    with app.extensions["hub.sessions"]() as session:
        assert accounts.authenticate_token(session, revoked_raw).id == revoked.id
        assert accounts.authenticate_token(session, accounts.TOKEN_PREFIX + "x" * 43) is None
    revoked_row.revoked_at = utcnow()
    kept.is_active = False
    db_session.commit()
    with app.extensions["hub.sessions"]() as session:
        assert accounts.authenticate_token(session, revoked_raw) is None
        assert accounts.authenticate_token(session, kept_raw) is None
