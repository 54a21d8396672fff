"""S4 (CSRF, cookies), S12 (login audit), S15 (headers, errors without stack traces)."""

import hashlib
import hmac
import re

import pyotp
from sqlalchemy import select

from hub.http import csrf
from hub.models import AuditEvent
from tests import factories
from tests.auth.test_login import page_token, submit_code, submit_password


def test_state_changing_form_refuses_a_missing_token(auth, coordinator):
    auth.login(coordinator)
    response = auth.client.post("/logout")
    assert response.status_code == 400
    assert "Le formulaire a expiré" in response.get_data(as_text=True)
    assert auth.client.get("/").status_code == 200, "still logged in"


def test_state_changing_form_refuses_another_sessions_token(app, auth, coordinator):
    other = app.test_client()
    foreign_token = page_token(other)
    auth.login(coordinator)
    assert auth.client.post("/logout", data={"csrf_token": foreign_token}).status_code == 400
    assert auth.client.get("/").status_code == 200


def test_the_token_computed_once_per_request_follows_a_renewed_session_id(app):
    """csrf_token keeps its HMAC for the rest of the request, but not past a new session id (the login's): a
    token kept from before would be refused with the form it went into."""
    with app.test_request_context("/"):
        first = csrf.csrf_token()
        assert csrf.csrf_token() == first
        csrf.renew_session_id()
        renewed = csrf.csrf_token()
        assert renewed != first
        key = app.secret_key.encode() if isinstance(app.secret_key, str) else app.secret_key
        assert renewed == hmac.new(key, b"csrf:" + csrf.session_id().encode(), hashlib.sha256).hexdigest()


def test_login_form_refuses_a_missing_token(client, coordinator):
    response = client.post("/login", data={"login": coordinator.login, "password": factories.PASSWORD})
    assert response.status_code == 400


def test_logout_by_get_is_not_possible(auth, coordinator):
    auth.login(coordinator)
    assert auth.client.get("/logout").status_code == 405
    assert auth.client.get("/").status_code == 200


def test_session_cookie_is_secure_httponly_samesite(client, coordinator):
    submit_password(client, coordinator.login)
    cookie = next(c for c in client._cookies.values() if c.key == "hub_session")
    assert cookie.secure and cookie.http_only and cookie.same_site == "Lax"


def test_security_headers_on_every_page(client):
    response = client.get("/login")
    headers = response.headers
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"


def test_patient_pages_are_not_cached(auth, coordinator, db_session, cpts):
    patient = factories.patient(db_session, cpts)
    db_session.commit()
    auth.login(coordinator)
    response = auth.client.get(f"/patients/{patient.id}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_unexpected_error_is_generic(app, client):
    def explode():
        raise RuntimeError("secret internals")

    from hub.http.access import PUBLIC, access

    app.view_functions["home.health"], original = access(PUBLIC)(explode), app.view_functions["home.health"]
    try:
        response = client.get("/healthz")
    finally:
        app.view_functions["home.health"] = original
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "secret internals" not in body and "Traceback" not in body
    assert "Erreur interne" in body


def test_every_login_step_is_audited_without_secrets(client, coordinator, db_session):
    submit_password(client, coordinator.login, "a wrong password!")
    submit_password(client, coordinator.login)
    submit_code(client, "000000")
    submit_code(client, pyotp.TOTP(coordinator.totp_secret).now())
    events = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(4)).all()[::-1]
    assert [(e.action, e.outcome) for e in events] == [
        ("login.password", "failure"),
        ("login.password", "success"),
        ("login.totp", "failure"),
        ("login.success", "success"),
    ]
    text = " ".join(e.details + e.actor_label for e in events)
    assert factories.PASSWORD not in text and "a wrong password" not in text
    assert re.search(r"\b\d{6}\b", text) is None
    assert all(e.ip == "192.0.2.10" and e.request_id for e in events)


def test_only_the_calendar_feed_and_static_files_may_be_revalidated(app):
    from hub.http.headers import REVALIDATED_ENDPOINTS

    assert {"static", "calendar.feed"} == REVALIDATED_ENDPOINTS
