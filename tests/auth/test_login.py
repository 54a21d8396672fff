"""Two-factor login, sessions, throttling (S5–S10 of docs/guarantees.md), through the real pages."""

import datetime as dt
import re
import threading

import pyotp
import pytest
import time_machine

from hub.db import utcnow
from hub.models import Role
from hub.services import accounts
from tests import factories

PASSWORD = factories.PASSWORD


def page_token(client, url="/login") -> str:
    html = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def submit_password(client, login, password=PASSWORD, *, ip="192.0.2.10"):
    token = page_token(client)
    return client.post(
        "/login",
        data={"login": login, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": ip},
    )


def submit_code(client, code, url="/login/totp", *, ip="192.0.2.10"):
    token = page_token(client, url)
    return client.post(url, data={"code": code, "csrf_token": token}, environ_base={"REMOTE_ADDR": ip})


def full_login(client, user, *, at=None):
    assert submit_password(client, user.login).status_code == 302
    return submit_code(client, pyotp.TOTP(user.totp_secret).at(at or utcnow()))


def logged_in(client) -> bool:
    return client.get("/healthz").status_code == 200 and client.get("/patients").status_code != 302


def test_password_then_code_logs_in(client, gp):
    response = submit_password(client, gp.login)
    assert response.headers["Location"] == "/login/totp"
    assert client.get("/patients").status_code == 302, "a password alone must not open the hub (S10)"
    response = submit_code(client, pyotp.TOTP(gp.totp_secret).now())
    assert response.status_code == 302
    assert client.get("/api/v1/patients").status_code == 401, "the API takes tokens, not the browser cookie"
    assert client.get("/patients").status_code == 200


def test_wrong_code_is_refused_and_counted(client, gp, db_session):
    submit_password(client, gp.login)
    response = submit_code(client, "000000")
    assert response.status_code == 401
    assert "Code incorrect" in response.get_data(as_text=True)
    assert client.get("/patients").status_code == 302


def test_unknown_login_and_wrong_password_get_the_same_answer(client, gp):
    wrong_password = submit_password(client, gp.login, "not the password at all")
    unknown = submit_password(client, "nobody-here", "not the password at all")
    assert wrong_password.status_code == unknown.status_code == 401
    assert message(wrong_password) == message(unknown) == "Identifiant ou mot de passe incorrect."


def test_inactive_account_gets_the_same_answer(client, gp, db_session):
    gp.is_active = False
    db_session.commit()
    assert submit_password(client, gp.login).status_code == 401


def test_session_id_changes_at_login_and_the_pre_login_cookie_is_dead(app, client, gp):
    page_token(client)
    with client.session_transaction() as before:
        pre_login_sid = before["sid"]
    submit_password(client, gp.login)
    pre_login_cookie = client.get_cookie("hub_session").value
    full_code = pyotp.TOTP(gp.totp_secret).now()
    submit_code(client, full_code)
    with client.session_transaction() as after:
        assert after["sid"] != pre_login_sid
        assert "auth_token" in after
    attacker = app.test_client()
    attacker.set_cookie("hub_session", pre_login_cookie)
    assert attacker.get("/patients").status_code == 302
    later_code = pyotp.TOTP(gp.totp_secret).at(utcnow() + dt.timedelta(seconds=30))
    assert attacker.get("/login/totp").status_code == 302, "the half-done login must not be resumable"
    response = attacker.post("/login/totp", data={"code": later_code})
    assert response.status_code in (302, 400)
    assert attacker.get("/patients").status_code == 302


def test_logout_is_server_side(app, client, gp):
    full_login(client, gp)
    cookie = client.get_cookie("hub_session").value
    token = page_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("hub_session", cookie)
    assert replay.get("/patients").status_code == 302


def test_deactivation_ends_sessions_and_tokens_at_the_next_request(client, gp, db_session, cpts):
    full_login(client, gp)
    _token, raw = accounts.create_api_token(db_session, gp, name="logiciel")
    db_session.commit()
    bearer = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/patients", headers=bearer).status_code == 200
    admin = factories.user(db_session, cpts, Role.ADMIN)
    accounts.deactivate_user(db_session, admin, gp)
    db_session.commit()
    assert client.get("/patients").status_code == 302
    assert client.get("/api/v1/patients", headers=bearer).status_code == 401


def test_idle_timeout_after_30_minutes(client, gp):
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        full_login(client, gp, at=start)
        clock.move_to(start + dt.timedelta(minutes=29))
        assert client.get("/patients").status_code == 200
        clock.move_to(start + dt.timedelta(minutes=29 + 31))
        assert client.get("/patients").status_code == 302


def test_absolute_timeout_after_12_hours_even_when_active(client, gp):
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        full_login(client, gp, at=start)
        for minutes in range(20, 12 * 60, 20):
            clock.move_to(start + dt.timedelta(minutes=minutes))
            assert client.get("/patients").status_code == 200, minutes
        clock.move_to(start + dt.timedelta(hours=12, minutes=1))
        assert client.get("/patients").status_code == 302


def test_second_factor_must_follow_the_password_quickly(client, gp):
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        submit_password(client, gp.login)
        clock.move_to(start + dt.timedelta(minutes=6))
        assert client.get("/login/totp").status_code == 302


def test_throttling_per_account_and_address_does_not_lock_the_owner_out(app, client, gp):
    for _ in range(5):
        assert submit_password(client, gp.login, "wrong password!!", ip="203.0.113.7").status_code == 401
    throttled = submit_password(client, gp.login, ip="203.0.113.7")
    assert throttled.status_code == 429
    assert "Trop de tentatives" in throttled.get_data(as_text=True)
    owner = app.test_client()
    assert submit_password(owner, gp.login, ip="198.51.100.4").status_code == 302


ATTACKER, OWNER = "203.0.113.66", "198.51.100.23"


def test_an_attacker_elsewhere_does_not_lock_the_owner_out(app, client, gp):
    """S19: 55 wrong passwords from one address; the owner, from another, logs in with both factors."""
    for _ in range(55):
        assert submit_password(client, gp.login, "wrong password!!", ip=ATTACKER).status_code in (401, 429)
    owner = app.test_client()
    assert submit_password(owner, gp.login, ip=OWNER).headers["Location"] == "/login/totp"
    assert submit_code(owner, pyotp.TOTP(gp.totp_secret).now(), ip=OWNER).status_code == 302
    assert logged_in(owner)
    assert submit_password(client, gp.login, ip=ATTACKER).status_code == 429, "the attacker stays throttled"


def test_refused_attempts_do_not_extend_the_lock(app, client, gp):
    """S19: a throttled address that keeps trying is free again one window after its last real failure."""
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(5):
            assert submit_password(client, gp.login, "wrong password!!", ip=ATTACKER).status_code == 401
        for minutes in range(1, 15):
            clock.move_to(start + dt.timedelta(minutes=minutes))
            assert submit_password(client, gp.login, "wrong password!!", ip=ATTACKER).status_code == 429
        clock.move_to(start + dt.timedelta(minutes=15, seconds=1))
        assert submit_password(client, gp.login, ip=ATTACKER).headers["Location"] == "/login/totp"


def message(response) -> str:
    return re.search(r'role="alert">([^<]+)<', response.get_data(as_text=True)).group(1)


def test_an_attack_from_many_addresses_withholds_the_password_verdict(app, client, gp):
    """S8, S19: past the account-wide count of failures (50), the password step no longer says whether the
    password was right, from any address; the owner proving the password and the code still gets in,
    a wrong password with the right code does not, and an unknown login is answered the same."""
    for n in range(10):
        for _ in range(5):
            assert submit_password(client, gp.login, "wrong password!!", ip=f"203.0.113.{n}").status_code == 401
    code = pyotp.TOTP(gp.totp_secret).now()
    guesser = app.test_client()
    assert submit_password(guesser, gp.login, "another guess!!!", ip="192.0.2.200").headers["Location"] == (
        "/login/totp"
    )
    refused = submit_code(guesser, code, ip="192.0.2.200")
    assert refused.status_code == 401
    assert message(refused) == "Identifiant, mot de passe ou code incorrect. Recommencez la connexion."
    assert not logged_in(guesser)
    for n in range(50):
        submit_password(client, "nobody-here", "wrong password!!", ip=f"203.0.113.{100 + n // 5}")
    unknown = app.test_client()
    assert submit_password(unknown, "nobody-here", "x" * 12, ip="192.0.2.201").headers["Location"] == "/login/totp"
    assert message(submit_code(unknown, code, ip="192.0.2.201")) == message(refused)
    owner = app.test_client()
    assert submit_password(owner, gp.login, ip=OWNER).headers["Location"] == "/login/totp"
    assert submit_code(owner, code, ip=OWNER).status_code == 302, "the code was not spent by the wrong password"
    assert logged_in(owner)


def test_throttling_per_address_across_accounts(client, gp):
    for n in range(20):
        submit_password(client, f"guess{n}", "wrong password!!", ip="203.0.113.9")
    assert submit_password(client, gp.login, ip="203.0.113.9").status_code == 429


def test_a_totp_code_works_once(client, app, gp):
    code = pyotp.TOTP(gp.totp_secret).now()
    submit_password(client, gp.login)
    assert submit_code(client, code).status_code == 302
    other = app.test_client()
    submit_password(other, gp.login)
    assert submit_code(other, code).status_code == 401


@pytest.mark.parametrize("offset_steps", [-3, 3])
def test_codes_outside_the_window_are_refused(db_session, gp, offset_steps):
    now = utcnow()
    code = pyotp.TOTP(gp.totp_secret).at(now + dt.timedelta(seconds=30 * offset_steps))
    assert accounts.verify_totp(db_session, gp, code, now=now) is False


def test_adjacent_step_is_accepted_for_clock_drift(db_session, gp):
    now = utcnow()
    code = pyotp.TOTP(gp.totp_secret).at(now - dt.timedelta(seconds=30))
    assert accounts.verify_totp(db_session, gp, code, now=now) is True


def test_enrolment_on_first_login(client, db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR, with_totp=False)
    db_session.commit()
    assert submit_password(client, user.login).headers["Location"] == "/login/enrol"
    html = client.get("/login/enrol").get_data(as_text=True)
    assert "<svg" in html
    secret = re.search(r'<code class="fs-5">([A-Z2-7]+)</code>', html).group(1)
    assert submit_code(client, "123456", "/login/enrol").status_code == 401
    response = submit_code(client, pyotp.TOTP(secret).now(), "/login/enrol")
    assert response.status_code == 302
    db_session.refresh(user)
    assert user.totp_secret == secret


def test_open_redirect_is_refused_after_login(client, gp):
    token = page_token(client, "/login?next=https://evil.example/")
    client.post(
        "/login",
        data={"login": gp.login, "password": PASSWORD, "csrf_token": token, "next": "https://evil.example/"},
    )
    response = submit_code(client, pyotp.TOTP(gp.totp_secret).now())
    assert response.headers["Location"] == "/"


def test_two_processes_verifying_the_same_code_at_once_only_one_wins(committed):
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        user = factories.user(session, org, Role.COORDINATOR)
        session.commit()
        created.append(org.id)
    code = pyotp.TOTP(user.totp_secret).now()
    barrier = threading.Barrier(6)
    results = []

    def verify():
        barrier.wait()
        with factory() as session:
            ok = accounts.verify_totp(session, session.get(type(user), user.id), code)
            session.commit()
            results.append(ok)

    threads = [threading.Thread(target=verify) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]


def test_a_link_to_the_login_steps_does_not_log_out(client, gp):
    """A cross-site link to the second factor or the enrolment must not end a session (S4)."""
    full_login(client, gp)
    for url in ("/login/totp", "/login/enrol", "/login"):
        assert client.get(url).headers["Location"] == "/", url
    assert logged_in(client)
