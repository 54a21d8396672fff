"""What the journeys stand on: the server reads the tests' clock, a person logs in again when their session has
idled out, and the page checks do fail on a page that breaks them."""

import datetime as dt

import pytest

from tests.browser.conftest import CLOCK
from tests.browser.support import DESKTOP, PHONE, assert_no_horizontal_scroll, check_axe


def created_token_row(page, name: str) -> str:
    page.goto("/me/tokens")
    page.get_by_label("Nom du jeton").fill(name)
    page.get_by_role("button", name="Créer le jeton").click()
    return page.get_by_role("row").filter(has_text=name).inner_text()


def test_the_server_reads_the_tests_clock(page_at, people, clock, shoot):
    page = page_at(DESKTOP, people.admin)
    assert "lundi 16 novembre 2026, 9 h 00" in created_token_row(page, "Horloge du lundi")
    shoot(page, "jeton du lundi")

    clock.move_to(CLOCK + dt.timedelta(days=1, hours=2))
    page.goto("/me/tokens")
    assert page.url.startswith(f"{page_at.base_url}/login"), "a day later, the session has idled out"
    page = page_at(DESKTOP, people.admin, log_in_again=True)
    assert "mardi 17 novembre 2026, 11 h 00" in created_token_row(page, "Horloge du mardi")
    shoot(page, "jeton du mardi")


def test_a_page_wider_than_the_phone_fails(page_at):
    page = page_at(PHONE)
    page.set_content('<html lang="fr"><title>t</title><main><h1>t</h1><p style="width: 500px">large</p></main>')
    with pytest.raises(AssertionError, match="118 px wider than its 390 px window: p \\(508 px\\)"):
        assert_no_horizontal_scroll(page)


def test_a_page_that_axe_refuses_fails(page_at):
    page = page_at(DESKTOP)
    page.set_content(
        '<html lang="fr"><title>t</title><main><h1>t</h1><p style="color: #bbb; background: #fff">pâle</p></main>'
    )
    with pytest.raises(AssertionError, match="color-contrast \\(serious\\)"):
        check_axe(page)
