"""A GET never changes state (S4): every route of the URL map that answers GET, requested by a logged-in
user of each kind, leaves the business tables as they were and the session working. A cross-site link or
an image tag can make a browser send a GET; it must neither change a record nor log anyone out."""

import pytest
from sqlalchemy import select

from hub.db import Base
from hub.services import accounts
from tests.test_authorization_matrix import world  # noqa: F401 (the matrix's world: a patient, a referral…)

# What a GET may write: the audit trail of reads (each event with the sequencer's marker), and the bookkeeping of
# the sessions and tokens it uses.
BOOKKEEPING = {
    "audit_events": None,
    "audit_unchained": None,
    "user_sessions": {"last_seen_at"},
    "api_tokens": {"last_used_at"},
}


def snapshot(session) -> dict:
    tables = {}
    for table in Base.metadata.sorted_tables:
        ignored = BOOKKEEPING.get(table.name, set())
        if ignored is None:
            continue
        columns = [column for column in table.columns if column.name not in ignored]
        tables[table.name] = session.execute(select(*columns).order_by(*table.primary_key.columns)).all()
    return tables


def get_routes(app):
    return sorted(
        (rule for rule in app.url_map.iter_rules() if "GET" in rule.methods and rule.endpoint != "static"),
        key=lambda rule: rule.rule,
    )


def walk(auth, user, urls, bearer, *, each=None) -> list[str]:
    """GET each URL; the URLs after which the browser's session was gone (logged in again to go on)."""
    logged_out = []
    for url in urls:
        before = snapshot(auth.session) if each is not None else {}
        auth.client.get(url, headers=bearer if url.startswith("/api/") else {})
        if each is not None:
            auth.session.expire_all()
            after = snapshot(auth.session)
            each += [f"{url}: {name}" for name in before if before[name] != after[name]]
        with auth.client.session_transaction() as browser_session:
            if "auth_token" not in browser_session:
                logged_out.append(url)
                auth.login(user)
    return logged_out


@pytest.mark.parametrize("role", ["coordinator", "gp", "admin"])
def test_no_get_changes_state_or_ends_the_session(app, auth, db_session, world, role):  # noqa: F811
    users, ids, _reset = world
    user = users[role]
    auth.login(user)
    _token, raw = accounts.create_api_token(db_session, user, name="get")
    db_session.commit()
    bearer = {"Authorization": f"Bearer {raw}"}
    urls = [rule.build({n: ids[n] for n in rule.arguments}, append_unknown=False)[1] for rule in get_routes(app)]
    before = snapshot(db_session)
    assert walk(auth, user, urls, bearer) == []
    db_session.expire_all()
    if snapshot(db_session) != before:
        changed = []  # walk again, one snapshot per request, to name the routes
        walk(auth, user, urls, bearer, each=changed)
        pytest.fail(f"GET changed the database: {changed or 'the tables differ'}")
    assert auth.client.get("/patients" if role != "admin" else "/admin/users").status_code == 200
