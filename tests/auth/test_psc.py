"""Pro Santé Connect login against a real OpenID Connect provider on loopback (tests/psc_server.py): the good flow
without a TOTP step, logout propagated, and each refusal with its French message and its audit line."""

import datetime as dt
import json
import re
from types import MappingProxyType

import pyotp
import pytest
import time_machine
from markupsafe import escape
from sqlalchemy import func, select

from hub.config import ConfigError, load_config
from hub.models import AuditEvent, Role, UserSession
from hub.services import accounts, psc
from tests import factories, psc_server
from tests.auth.test_login import submit_code, submit_password

REDIRECT_URI = "http://localhost/login/psc/callback"
POST_LOGOUT_REDIRECT_URI = "http://localhost/login"


@pytest.fixture(scope="module")
def provider():
    running = psc_server.start_provider(REDIRECT_URI, POST_LOGOUT_REDIRECT_URI)
    yield running
    running.stop()


def _configure(app, monkeypatch, provider, **extra):
    values = psc_server.settings(
        provider, redirect_uri=REDIRECT_URI, post_logout_redirect_uri=POST_LOGOUT_REDIRECT_URI, **extra
    )
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], **values}))


@pytest.fixture
def psc_on(app, monkeypatch, provider):
    _configure(app, monkeypatch, provider)
    return provider


@pytest.fixture
def nurse(db_session, cpts):
    return factories.clinician(db_session, cpts)


def start(client) -> str:
    response = client.get("/login/psc")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def at_provider(authorization_url: str, *, login: str, acr: str = psc_server.SUBSTANTIAL) -> str:
    return psc_server.authenticate(authorization_url, REDIRECT_URI, login=login, acr=acr)


def come_back(client, url: str):
    return client.get(psc_server.callback_path(url))


def psc_audit(db_session) -> list[AuditEvent]:
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == "login.psc").order_by(AuditEvent.id)))


def refused_with(response, reason: str, db_session, *, sessions: int = 0) -> None:
    assert response.status_code == 401
    assert escape(psc.MESSAGES[reason]) in response.get_data(as_text=True)
    last = psc_audit(db_session)[-1]
    assert (last.outcome, json.loads(last.details)["reason"]) == ("failure", reason)
    assert db_session.scalar(select(func.count(UserSession.id))) == sessions, "no session may open"


def test_login_button_shows_only_when_psc_is_on(client, app, monkeypatch, provider):
    assert "Pro Santé Connect" not in client.get("/login").get_data(as_text=True)
    assert client.get("/login/psc").status_code == 404
    _configure(app, monkeypatch, provider)
    page = client.get("/login")
    assert "Se connecter avec Pro Santé Connect" in page.get_data(as_text=True)
    assert f"form-action 'self' {provider.issuer}" in page.headers["Content-Security-Policy"]


def test_authorization_request_asks_pkce_s256_acr_state_and_nonce(client, psc_on):
    query = psc_server.query_of(start(client))
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["acr_values"] == psc_server.SUBSTANTIAL
    assert query["scope"] == "openid scope_all"
    with client.session_transaction() as browser:
        flow = browser["psc_flow"]
    assert (flow["state"], flow["nonce"]) == (query["state"], query["nonce"])
    assert "verifier" in flow and flow["verifier"] not in start(client), "the verifier never leaves the hub"


def test_professional_logs_in_without_totp_and_logout_reaches_psc(client, db_session, psc_on, nurse):
    back = at_provider(start(client), login=psc_server.national_id(nurse.professional.rpps))
    response = come_back(client, back)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/patients").status_code == 200, "logged in, without the TOTP step"
    db_session.refresh(nurse)
    assert nurse.psc_linked_at is not None
    success = psc_audit(db_session)[-1]
    assert (success.outcome, success.actor_user_id, json.loads(success.details)) == (
        "success",
        nurse.id,
        {"acr": "eidas1"},
    )
    assert db_session.scalar(select(AuditEvent.id).where(AuditEvent.action == "login.success")) is not None

    with client.session_transaction() as browser:
        id_token = browser["psc_id_token"]
    logout = client.post("/logout", data={"csrf_token": _csrf(client)})
    end = psc_server.query_of(logout.headers["Location"])
    assert logout.headers["Location"].startswith(f"{psc_on.issuer}/session/end?")
    assert end == {
        "id_token_hint": id_token,
        "post_logout_redirect_uri": POST_LOGOUT_REDIRECT_URI,
        "client_id": psc_server.CLIENT_ID,
    }
    assert client.get("/patients").status_code == 302, "the hub's session ended"
    assert db_session.scalar(select(UserSession.end_reason)) == "logout"


def _csrf(client) -> str:
    html = client.get("/me").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_forged_token_is_refused(client, db_session, app, monkeypatch, provider, nurse):
    relay = psc_server.ForgingRelay(provider.issuer)
    try:
        _configure(app, monkeypatch, provider, discovery_url=relay.discovery_url)
        back = at_provider(start(client), login=psc_server.national_id(nurse.professional.rpps))
        refused_with(come_back(client, back), "bad_token", db_session)
    finally:
        relay.stop()
        psc._metadata.clear()  # the relay's discovery document must not outlive it


def test_wrong_acr_is_refused(client, db_session, psc_on, nurse):
    back = at_provider(start(client), login=psc_server.national_id(nurse.professional.rpps), acr=psc_server.OTHER_LEVEL)
    refused_with(come_back(client, back), "wrong_acr", db_session)
    assert json.loads(psc_audit(db_session)[-1].details)["acr"] == psc_server.OTHER_LEVEL


def test_replayed_code_is_refused(client, app, db_session, psc_on, nurse):
    back = at_provider(start(client), login=psc_server.national_id(nurse.professional.rpps))
    assert come_back(client, back).status_code == 302
    # The same answer again: its state was used once and is gone.
    other = app.test_client()
    refused_with(come_back(other, back), "bad_state", db_session, sessions=1)
    # The code under a fresh state of another browser: the provider refuses a code it already exchanged.
    fresh_state = psc_server.query_of(start(other))["state"]
    code = psc_server.query_of(back)["code"]
    refused_with(
        other.get(f"/login/psc/callback?code={code}&state={fresh_state}"), "code_refused", db_session, sessions=1
    )


def test_bad_state_is_refused(client, db_session, psc_on, nurse):
    back = at_provider(start(client), login=psc_server.national_id(nurse.professional.rpps))
    code = psc_server.query_of(back)["code"]
    refused_with(client.get(f"/login/psc/callback?code={code}&state=forged"), "bad_state", db_session)


def test_bad_nonce_is_refused(client, db_session, psc_on, nurse):
    back = at_provider(start(client), login=psc_server.national_id(nurse.professional.rpps))
    with client.session_transaction() as browser:
        browser["psc_flow"] = {**browser["psc_flow"], "nonce": "another-login"}
    refused_with(come_back(client, back), "bad_nonce", db_session)


def test_expired_token_is_refused(client, db_session, psc_on, nurse):
    # The hub's clock past the token's hour of life (the provider's own clock issues it now).
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=65), tick=True):
        authorization_url = start(client)
    back = at_provider(authorization_url, login=psc_server.national_id(nurse.professional.rpps))
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=66), tick=True):
        refused_with(come_back(client, back), "expired_token", db_session)


def test_unknown_rpps_is_refused(client, db_session, psc_on):
    back = at_provider(start(client), login=psc_server.national_id(factories.valid_rpps()))
    refused_with(come_back(client, back), "unknown_rpps", db_session)


def test_inactive_user_is_refused(client, db_session, psc_on, nurse):
    nurse.is_active = False
    db_session.flush()
    back = at_provider(start(client), login=psc_server.national_id(nurse.professional.rpps))
    refused_with(come_back(client, back), "inactive_user", db_session)
    assert psc_audit(db_session)[-1].actor_user_id == nurse.id


def test_provider_down_is_a_french_503(client, app, monkeypatch, provider, db_session):
    _configure(app, monkeypatch, provider, discovery_url="http://127.0.0.1:9/.well-known/openid-configuration")
    response = client.get("/login/psc")
    assert response.status_code == 503 and escape(psc.MESSAGES["unreachable"]) in response.get_data(as_text=True)
    assert json.loads(psc_audit(db_session)[-1].details)["reason"] == "unreachable"


# --- the CPTS refuses passwords to its professionals who have PSC -------------------------------------------


def test_password_refused_once_the_cpts_says_so(client, app, db_session, cpts, psc_on, nurse, auth):
    admin = factories.user(db_session, cpts, Role.ADMIN)
    other = factories.clinician(db_session, cpts)
    nurse.psc_linked_at = dt.datetime.now(dt.UTC)
    db_session.flush()
    assert submit_password(client, nurse.login).status_code == 302, "allowed until the CPTS refuses it"

    _token, raw = accounts.create_api_token(db_session, admin, name="réglages")
    db_session.commit()
    bearer = {"Authorization": f"Bearer {raw}"}
    answer = app.test_client().put(
        "/api/v1/login-settings", json={"password_refused_to_psc_users": True}, headers=bearer
    )
    assert answer.status_code == 200
    assert answer.json == {"psc_enabled": True, "password_refused_to_psc_users": True, "psc_users": 1}
    bad = app.test_client().put(
        "/api/v1/login-settings", json={"password_refused_to_psc_users": "peut-être"}, headers=bearer
    )
    assert bad.status_code == 422 and bad.content_type == "application/problem+json"

    refused = app.test_client()
    response = submit_password(refused, nurse.login)
    assert response.status_code == 403
    assert "Se connecter avec Pro Santé Connect" in response.get_data(as_text=True)
    denial = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "login.password_psc_required")).one()
    assert (denial.outcome, denial.actor_user_id) == ("failure", nurse.id)
    # Someone who never logged in through PSC keeps the password and the code.
    allowed = app.test_client()
    assert submit_password(allowed, other.login).headers["Location"] == "/login/totp"
    # And the nurse still gets in through PSC.
    back = at_provider(start(refused), login=psc_server.national_id(nurse.professional.rpps))
    assert come_back(refused, back).headers["Location"] == "/"


def test_password_refused_after_the_code_when_the_choice_came_in_between(client, db_session, cpts, psc_on, nurse):
    nurse.psc_linked_at = dt.datetime.now(dt.UTC)
    db_session.flush()
    assert submit_password(client, nurse.login).headers["Location"] == "/login/totp"
    cpts.is_password_refused_to_psc_users = True
    db_session.flush()
    response = submit_code(client, pyotp.TOTP(nurse.totp_secret).now())
    assert response.status_code == 403 and "Pro Santé Connect" in response.get_data(as_text=True)
    assert client.get("/patients").status_code == 302


def test_admin_sets_the_choice_on_a_page(client, db_session, cpts, auth):
    admin = factories.user(db_session, cpts, Role.ADMIN)
    auth.login(admin)
    page = client.get("/admin/login-settings")
    assert page.status_code == 200 and "Refuser le mot de passe" in page.get_data(as_text=True)
    response = auth.post("/admin/login-settings", data={"password_refused_to_psc_users": "true"})
    assert response.status_code == 302
    db_session.refresh(cpts)
    assert cpts.is_password_refused_to_psc_users is True
    assert (
        db_session.scalars(select(AuditEvent).where(AuditEvent.action == "cpts.psc_password")).one().cpts_id == cpts.id
    )
    auth.post("/admin/login-settings", data={})
    db_session.refresh(cpts)
    assert cpts.is_password_refused_to_psc_users is False


def test_the_account_page_tells_whether_psc_was_used(client, db_session, cpts, auth, nurse):
    auth.login(factories.user(db_session, cpts, Role.ADMIN))
    assert "Jamais utilisé" in client.get(f"/admin/users/{nurse.id}").get_data(as_text=True)
    nurse.psc_linked_at = dt.datetime(2026, 11, 16, 8, 30, tzinfo=dt.UTC)
    db_session.commit()
    assert "Première connexion le lundi 16 novembre 2026, 9 h 30" in client.get(f"/admin/users/{nurse.id}").get_data(
        as_text=True
    )


# --- configuration -------------------------------------------------------------------------------------------


def test_configuration_is_checked_at_start_up(tmp_path):
    base = {"ENV": "production", "SECRET_KEY": "x" * 40, "AUDIT_KEY": "k" * 40, "DATABASE_URL": "sqlite:///:memory:"}
    base |= {"PSC_ENABLED": 1}
    with pytest.raises(ConfigError, match="HUB_PSC_ISSUER, HUB_PSC_CLIENT_ID"):
        load_config(tmp_path, base)
    complete = base | {
        "PSC_ISSUER": "http://psc.example",
        "PSC_CLIENT_ID": "hub",
        "PSC_CLIENT_SECRET": "secret",
        "PSC_REDIRECT_URI": "https://hub.example/login/psc/callback",
        "PSC_POST_LOGOUT_REDIRECT_URI": "https://hub.example/login",
    }
    with pytest.raises(ConfigError, match="https"):
        load_config(tmp_path, complete)
    assert load_config(tmp_path, complete | {"PSC_ISSUER": "https://psc.example"})["PSC_REQUIRED_ACR"] == "eidas1"
