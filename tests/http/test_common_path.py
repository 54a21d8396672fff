"""The request cycle's common path, paid by every request, made cheaper without changing what it does: a NUL byte is
still refused wherever it is, although `request.args` is only parsed when the query string may hold one; the request
id is still a version 4 UUID's hex; Flask's coroutine check is made once per function; the session cookie is not
looked for in a request without a Cookie header; the audit row of `current_user` is the user's."""

import uuid

import pytest
from flask import g, request
from flask_login import current_user

from hub import audit
from hub.http.inputs import NulByte, refuse_nul_bytes
from hub.http.request import new_request_id


@pytest.mark.parametrize(
    "query",
    [b"a=%00", b"a%00=1", b"a=\x00", b"q=\xc3\xa9%00", b"q=%C3%A9&b=x%00y"],
    ids=["value", "name", "raw-byte", "utf8-then-escape", "second-pair"],
)
def test_a_nul_in_the_query_string_is_refused_by_a_view_that_never_reads_it(client, query):
    response = client.get("/healthz", environ_overrides={"QUERY_STRING": query.decode("latin-1")})
    assert response.status_code == 400
    assert "caractère nul" in response.get_data(as_text=True)


def test_a_nul_in_the_path_is_refused(client):
    assert client.get("/healthz%00").status_code == 400
    assert client.get("/api/v1/patients/1%00").status_code == 400


@pytest.mark.parametrize(
    ("query", "parsed"),
    [(b"", False), (b"page=2&q=DUPONT", False), (b"q=%25100", False), (b"q=\xc3\xa9", True), (b"q=%00", True)],
)
def test_the_query_string_is_parsed_only_when_it_may_hold_a_nul(app, query, parsed):
    with app.test_request_context("/healthz", environ_overrides={"QUERY_STRING": query.decode("latin-1")}):
        if query == b"q=%00":
            with pytest.raises(NulByte):
                refuse_nul_bytes()
        else:
            refuse_nul_bytes()
        assert ("args" in vars(request._get_current_object())) is parsed


def test_the_request_id_is_a_version_4_uuid(client):
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200
    for request_id in ids:
        parsed = uuid.UUID(hex=request_id)
        assert (parsed.hex, parsed.version, parsed.variant) == (request_id, 4, uuid.RFC_4122)
    answered = client.get("/healthz").headers["X-Request-Id"]
    assert uuid.UUID(hex=answered).version == 4


def test_a_request_id_holding_a_newline_is_still_refused_as_a_header_value(app):
    """The constant headers are appended unchecked (checked once, when built); the request id is checked."""
    from flask import Response

    from hub.http.headers import secure_headers

    with app.test_request_context("/login"):
        app.preprocess_request()
        g.request_id = "r-1\r\nSet-Cookie: x=1"
        with pytest.raises(ValueError, match="newline"):
            secure_headers(Response("x"))


def test_a_revalidated_endpoints_error_is_not_stored(client):
    """An unknown feed's 404 sets none of the headers: all of them are appended at once, no-store included (a
    shared cache must not keep a feed's refusal; its 200 and 304 are revalidated instead)."""
    response = client.get("/ical/unknown.ics")
    assert response.status_code == 404
    names = [name for name, _ in response.headers]
    assert response.headers["Cache-Control"] == "no-store"
    assert names[-8:] == [
        "Strict-Transport-Security",
        "Content-Security-Policy",
        "X-Content-Type-Options",
        "Referrer-Policy",
        "X-Frame-Options",
        "Cache-Control",
        "X-Request-Id",
        "Vary",  # Flask's, after every after-request step
    ]


def test_flask_asks_once_whether_a_function_is_a_coroutine(app, monkeypatch):
    import flask.app

    asked = []
    real = flask.app.iscoroutinefunction
    monkeypatch.setattr(flask.app, "iscoroutinefunction", lambda func: asked.append(func) or real(func))

    def hook():
        return None

    class Hooks:
        def method(self):
            return None

    for _ in range(3):
        assert app.ensure_sync(hook) is hook
    first, second = Hooks(), Hooks()
    assert app.ensure_sync(first.method) == first.method
    assert app.ensure_sync(second.method) == second.method
    assert asked == [hook, first.method]


def test_flask_still_wraps_a_coroutine_function_at_each_call(app, monkeypatch):
    import flask.app

    wrapped = []
    monkeypatch.setattr(flask.Flask, "async_to_sync", lambda self, func: wrapped.append(func) or (lambda: None))

    async def view():
        return None

    app.ensure_sync(view)
    app.ensure_sync(view)
    assert wrapped == [view, view]
    assert flask.app.iscoroutinefunction(view)


def test_without_a_cookie_header_the_cookies_are_not_parsed(app):
    with app.test_request_context("/api/v1/patients/1"):
        session = app.session_interface.open_session(app, request)
        assert session is not None and not session
        assert "cookies" not in vars(request._get_current_object())
    with app.test_request_context("/patients", headers={"Cookie": "other=1"}):
        assert not app.session_interface.open_session(app, request)
        assert "cookies" in vars(request._get_current_object())


def test_the_audit_row_of_current_user_is_that_of_the_user(app, db_session, gp):
    with app.test_request_context("/patients"):
        g._login_user = gp
        through_proxy = audit.event_row(actor=current_user, action="patient.read", target=("patients", 1))
        direct = audit.event_row(actor=gp, action="patient.read", target=("patients", 1))
    for row in (through_proxy, direct):
        row.pop("occurred_at")
    assert through_proxy == direct
    assert (direct["actor_user_id"], direct["actor_label"], direct["cpts_id"]) == (gp.id, gp.login, gp.cpts_id)
    assert direct["details"] == "{}"
    details = {"b": 1, "a": "é"}
    assert audit.event_row(actor=None, action="x", details=details)["details"] == '{"a": "é", "b": 1}'


def test_a_callable_made_per_request_is_not_kept_by_the_coroutine_check(app):
    import gc
    import weakref

    def made_per_request():
        return None

    kept = weakref.ref(made_per_request)
    assert app.ensure_sync(made_per_request) is made_per_request
    del made_per_request
    gc.collect()
    assert kept() is None
