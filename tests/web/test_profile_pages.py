"""« Mon profil »: identity, own password, second factor, calendar link and API tokens, reached from one's name."""

import datetime as dt
import html
import re

import pyotp
import pytest
from sqlalchemy import func, select

from hub.db import utcnow
from hub.models import AuditEvent, LoginAttempt, UserSession
from hub.services import accounts, calendar_feeds
from tests import factories

NEW_PASSWORD = "un mot de passe tout neuf"
LIMITS = accounts.SessionLimits(idle=dt.timedelta(hours=1), absolute=dt.timedelta(hours=1))


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def field_error(body: str, name: str) -> str:
    found = re.search(rf'<div class="field-error" id="e-{re.escape(name)}">([^<]*)</div>', body)
    return html.unescape(found.group(1)) if found else ""


def audited(db_session, user, action: str) -> int:
    return db_session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.actor_user_id == user.id, AuditEvent.action == action)
    )


def open_sessions(db_session, user) -> int:
    return db_session.scalar(
        select(func.count())
        .select_from(UserSession)
        .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    )


def test_ones_name_in_the_menu_opens_the_profile(auth, db_session, nurse):
    auth.login(nurse)
    body = auth.client.get("/").get_data(as_text=True)
    assert re.search(rf'<a href="/me"[^>]*>(<span[^>]*>[^<]*</span>)?{re.escape(nurse.display_name)}</a>', body)
    assert 'href="/me/tokens"' not in body


def test_profile_shows_identity_and_links_to_calendar_and_tokens(auth, db_session, nurse):
    calendar_feeds.create_feed(db_session, nurse, nurse.professional, show_patient_initials=False)
    accounts.create_api_token(db_session, nurse, name="Logiciel du cabinet")
    db_session.commit()
    auth.login(nurse)
    response = auth.client.get("/me")
    body = text_of(response)
    assert response.status_code == 200
    assert nurse.display_name in body and nurse.login in body and nurse.professional.rpps in body
    assert "Professionnel·le de santé" in body and "Infirmier" in body
    assert "Un lien d'abonnement est actif depuis le" in body and 'href="/me/calendar"' in body
    assert "1 jeton en service" in body and 'href="/me/tokens"' in body
    assert "Double authentification" in body and 'href="/me/second-factor"' in body
    assert 'autocomplete="current-password"' in body and 'autocomplete="new-password"' in body


def test_profile_of_an_account_without_a_professional(auth, admin):
    auth.login(admin)
    body = text_of(auth.client.get("/me"))
    assert "Administrateur·rice" in body and "réservé aux professionnels de santé" in body
    assert 'href="/me/calendar"' not in body


def test_own_password_changed_keeps_this_session_and_ends_the_others(auth, db_session, nurse):
    other = accounts.start_session(db_session, nurse)
    auth.login(nurse)
    response = auth.post(
        "/me/password",
        {
            "current_password": factories.PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirmation": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == "/me"
    db_session.refresh(nurse)
    assert accounts._verify_password(nurse.password_hash, NEW_PASSWORD)
    assert nurse.password_hash.startswith("$argon2")
    assert audited(db_session, nurse, "user.password_change") == 1
    assert accounts.resume_session(db_session, other, LIMITS) is None
    assert open_sessions(db_session, nurse) == 1
    assert "Mot de passe modifié" in text_of(auth.client.get("/me"))


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        (
            {
                "current_password": "pas le bon mot de passe",
                "new_password": NEW_PASSWORD,
                "new_password_confirmation": NEW_PASSWORD,
            },
            "current_password",
            accounts.WRONG_CURRENT_PASSWORD,
        ),
        (
            {
                "current_password": factories.PASSWORD,
                "new_password": NEW_PASSWORD,
                "new_password_confirmation": "autre chose encore",
            },
            "new_password_confirmation",
            accounts.CONFIRMATION_DIFFERS,
        ),
        (
            {"current_password": factories.PASSWORD, "new_password": "court", "new_password_confirmation": "court"},
            "new_password",
            accounts.TOO_SHORT,
        ),
        (
            {
                "current_password": factories.PASSWORD,
                "new_password": factories.PASSWORD,
                "new_password_confirmation": factories.PASSWORD,
            },
            "new_password",
            accounts.SAME_PASSWORD,
        ),
        (
            {"current_password": factories.PASSWORD, "new_password": NEW_PASSWORD},
            "new_password_confirmation",
            "Ce champ est obligatoire.",
        ),
    ],
)
def test_own_password_refused_changes_nothing(auth, db_session, nurse, form, field, message):
    other = accounts.start_session(db_session, nurse)
    before = nurse.password_hash
    auth.login(nurse)
    response = auth.post("/me/password", form)
    body = text_of(response)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert NEW_PASSWORD not in body and factories.PASSWORD not in body, "passwords are never sent back"
    db_session.refresh(nurse)
    assert nurse.password_hash == before
    assert audited(db_session, nurse, "user.password_change") == 0
    assert accounts.resume_session(db_session, other, LIMITS) is not None


def test_wrong_current_password_counts_as_a_failed_login_until_throttled(app, auth, db_session, nurse):
    auth.login(nurse)
    wrong = {"current_password": "pas le bon", "new_password": NEW_PASSWORD, "new_password_confirmation": NEW_PASSWORD}
    limit = app.config["HUB"]["LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_IP"]
    for _ in range(limit):
        assert auth.post("/me/password", wrong).status_code == 422
    failures = (
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.login == nurse.login, LoginAttempt.succeeded.is_(False))
    )
    assert db_session.scalar(failures) == limit
    right = {**wrong, "current_password": factories.PASSWORD}
    response = auth.post("/me/password", right)
    assert response.status_code == 429 and "Trop de tentatives" in text_of(response)
    db_session.refresh(nurse)
    assert not accounts._verify_password(nurse.password_hash, NEW_PASSWORD)


def new_key_of(page) -> str:
    return re.search(r'<code class="fs-5 text-break">([A-Z2-7]+)</code>', page.get_data(as_text=True)).group(1)


def test_second_factor_replaced_after_a_code_of_the_new_key(auth, db_session, nurse):
    old_secret = nurse.totp_secret
    other = accounts.start_session(db_session, nurse)
    auth.login(nurse)
    page = auth.client.get("/me/second-factor")
    assert page.status_code == 200 and "<svg" in page.get_data(as_text=True)
    secret = new_key_of(page)
    assert secret != old_secret and new_key_of(auth.client.get("/me/second-factor")) == secret, "kept until used"
    code = pyotp.TOTP(secret).at(utcnow())
    response = auth.post("/me/second-factor", {"current_password": factories.PASSWORD, "code": code})
    assert response.status_code == 302 and response.headers["Location"] == "/me"
    db_session.refresh(nurse)
    assert nurse.totp_secret == secret
    assert audited(db_session, nurse, "user.totp_replace") == 1
    assert accounts.resume_session(db_session, other, LIMITS) is None
    assert not accounts.verify_totp(db_session, nurse, code), "the confirming code is spent"
    assert not accounts.verify_totp(db_session, nurse, pyotp.TOTP(old_secret).at(utcnow())), "the old key is dead"
    assert new_key_of(auth.client.get("/me/second-factor")) != secret, "a next change starts from a new key"


@pytest.mark.parametrize(
    ("password", "code_of", "field", "message"),
    [
        (factories.PASSWORD, "old", "code", accounts.NEW_CODE_REFUSED),
        (factories.PASSWORD, "none", "code", accounts.NEW_CODE_REFUSED),
        (factories.PASSWORD, "empty", "code", "Ce champ est obligatoire."),
        ("pas le bon", "new", "current_password", accounts.WRONG_CURRENT_PASSWORD),
    ],
)
def test_second_factor_refused_changes_nothing(auth, db_session, nurse, password, code_of, field, message):
    old_secret = nurse.totp_secret
    auth.login(nurse)
    secret = new_key_of(auth.client.get("/me/second-factor"))
    code = {
        "old": pyotp.TOTP(old_secret).at(utcnow()),
        "new": pyotp.TOTP(secret).at(utcnow()),
        "none": "123456" if pyotp.TOTP(secret).at(utcnow()) != "123456" else "654321",
        "empty": "",
    }[code_of]
    response = auth.post("/me/second-factor", {"current_password": password, "code": code})
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    db_session.refresh(nurse)
    assert nurse.totp_secret == old_secret
    assert audited(db_session, nurse, "user.totp_replace") == 0
    assert new_key_of(auth.client.get("/me/second-factor")) == secret, "the same new key, to try again"


def test_second_factor_without_a_key_shown_first(auth, db_session, nurse):
    old_secret = nurse.totp_secret
    auth.login(nurse)
    response = auth.post("/me/second-factor", {"current_password": factories.PASSWORD, "code": "123456"})
    assert response.status_code == 302 and response.headers["Location"] == "/me/second-factor"
    db_session.refresh(nurse)
    assert nurse.totp_secret == old_secret


def test_profile_needs_a_login(client):
    response = client.get("/me")
    assert response.status_code in (302, 401)
