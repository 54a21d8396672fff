"""A demo IDEL logs in through Pro Santé Connect, on a phone (390 px) and on a desktop: « Se connecter avec Pro Santé
Connect » on the login page, the e-CPS step at the loopback provider (tests/psc_server.py), and her desk, without a
code to type; her logout then ends her PSC session too and brings her back to the login page. axe-core and no
horizontal scroll on the hub's pages (the provider's page is a stand-in, not ours)."""

import datetime as dt
from types import MappingProxyType

import pytest
import time_machine
from playwright.sync_api import Page
from sqlalchemy import select

from hub.models import Professional, User
from tests import psc_server
from tests.browser.support import DESKTOP, PHONE, assert_no_horizontal_scroll, check_axe, forget_earlier_logins


@pytest.fixture(scope="module")
def provider(base_url):
    running = psc_server.start_provider(f"{base_url}/login/psc/callback", f"{base_url}/login")
    yield running
    running.stop()


@pytest.fixture
def psc_on(browser_app, base_url, provider, monkeypatch, clock):
    values = psc_server.settings(
        provider, redirect_uri=f"{base_url}/login/psc/callback", post_logout_redirect_uri=f"{base_url}/login"
    )
    monkeypatch.setitem(browser_app.config, "HUB", MappingProxyType({**browser_app.config["HUB"], **values}))
    # The provider signs with the real clock: the server's clock goes to the real now (still frozen), or the
    # tokens would be issued weeks after the tests' Monday.
    clock.move_to(dt.datetime.fromtimestamp(time_machine.escape_hatch.time.time(), dt.UTC))
    return provider


def national_id_of(sessions, login: str) -> str:
    with sessions() as session:
        rpps = session.scalars(
            select(Professional.rpps).join(User, User.professional_id == Professional.id).where(User.login == login)
        ).one()
    return psc_server.national_id(rpps)


def log_in_with_psc(page: Page, base_url: str, national_id: str, shoot) -> None:
    page.goto(f"{base_url}/login")
    check_axe(page)
    assert_no_horizontal_scroll(page)
    shoot(page, "connexion")
    page.get_by_role("link", name="Se connecter avec Pro Santé Connect").click()
    page.get_by_label("Identifiant national (IdNat)").fill(national_id)
    with page.expect_navigation(url=f"{base_url}/"):
        page.get_by_role("button", name="Se connecter avec e-CPS").click()


@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_an_idel_logs_in_through_pro_sante_connect(page_at, base_url, sessions, people, psc_on, shoot, width):
    forget_earlier_logins(sessions, people.idel)
    page = page_at(width)
    log_in_with_psc(page, base_url, national_id_of(sessions, people.idel), shoot)
    assert page.url == f"{base_url}/"
    assert page.locator("form[action='/logout']").count() >= 1, "logged in, without a code"
    check_axe(page)
    assert_no_horizontal_scroll(page)
    shoot(page, "bureau")

    if width == PHONE:
        page.get_by_text("Menu", exact=True).click()  # the account's links are folded in the menu on a phone
    page.get_by_role("button", name="Se déconnecter").click()
    page.wait_for_url(f"{psc_on.issuer}/session/end**")
    with page.expect_navigation(url=f"{base_url}/login"):
        page.locator("button[name=logout]").click()
    assert page.get_by_role("link", name="Se connecter avec Pro Santé Connect").is_visible()
    check_axe(page)
    shoot(page, "deconnexion")


def test_an_unknown_professional_is_told_in_french(page_at, base_url, psc_on, shoot):
    page = page_at(PHONE)
    page.goto(f"{base_url}/login")
    page.get_by_role("link", name="Se connecter avec Pro Santé Connect").click()
    page.get_by_label("Identifiant national (IdNat)").fill(psc_server.national_id("10000000009"))
    with page.expect_navigation(url=f"{base_url}/login/psc/callback**"):
        page.get_by_role("button", name="Se connecter avec e-CPS").click()
    assert "Aucun compte du hub n'est lié à votre numéro RPPS" in page.get_by_role("alert").inner_text()
    check_axe(page)
    assert_no_horizontal_scroll(page)
    shoot(page, "rpps inconnu")


def test_the_admin_refuses_passwords_to_psc_users(page_at, people, sessions, shoot):
    page = page_at(DESKTOP, people.admin)
    page.goto("/admin")
    page.get_by_role("link", name="Réglages de connexion").click()
    choice = page.get_by_label(
        "Refuser le mot de passe aux professionnels qui se sont déjà connectés par Pro Santé Connect"
    )
    check_axe(page)
    shoot(page, "reglages")
    choice.check()
    page.get_by_role("button", name="Enregistrer").click()
    assert "Réglages de connexion enregistrés." in page.get_by_role("main").inner_text()
    assert choice.is_checked()
    check_axe(page)
    choice.uncheck()  # the demo's other journeys log in with passwords
    page.get_by_role("button", name="Enregistrer").click()
    assert not choice.is_checked()
