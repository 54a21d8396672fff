"""The menu: one line on a laptop, folded to one line on a phone, opened without JavaScript; one's own name
opens « Mon profil »."""

from tests.browser.support import DESKTOP, PHONE, assert_menu_on_one_line, assert_no_horizontal_scroll, check_axe


def test_on_a_phone_the_menu_unfolds_and_the_name_opens_the_profile(page_at, people, shoot):
    page = page_at(PHONE, people.idel)
    page.goto("/")
    assert_menu_on_one_line(page)
    menu = page.get_by_role("navigation", name="Menu principal")
    assert not menu.is_visible()
    page.get_by_text("Menu", exact=True).click()
    assert menu.get_by_role("link", name="Mes visites").is_visible()
    shoot(page, "menu ouvert")
    page.get_by_role("link", name="Mon profil").click()
    page.wait_for_url("**/me")
    assert page.get_by_role("heading", level=1).inner_text() == "Mon profil"
    assert page.get_by_role("heading", name="Mon agenda dans mon calendrier").is_visible()
    assert_no_horizontal_scroll(page)
    check_axe(page)
    shoot(page, "mon profil")
    page.get_by_role("link", name="Changer d'application d'authentification").click()
    page.wait_for_url("**/me/second-factor")
    assert page.get_by_role("img", name="QR code d'enrôlement").is_visible()
    assert_no_horizontal_scroll(page)
    check_axe(page)
    shoot(page, "nouvelle application")


def test_on_a_laptop_the_menu_is_one_line_and_marks_the_page_shown(page_at, people, shoot):
    page = page_at(DESKTOP, people.coordinator)
    page.goto("/planning")
    assert_menu_on_one_line(page)
    menu = page.get_by_role("navigation", name="Menu principal")
    assert menu.get_by_role("link", name="Planning").get_attribute("aria-current") == "page"
    assert menu.get_by_role("link", name="Patients").get_attribute("aria-current") is None
    page.get_by_role("link", name="Mon profil").click()
    page.wait_for_url("**/me")
    page.get_by_role("link", name="Gérer mes jetons").click()
    page.wait_for_url("**/me/tokens")
    shoot(page, "jetons")
