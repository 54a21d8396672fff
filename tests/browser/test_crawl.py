"""Each role's pages, as the person meets them: every page the menu and the home page link to, on a laptop and
on a phone: no page wider than the screen, the menu on one line, axe-core clean (no serious or critical
violation), and no console error (a file missing, a style or a script the CSP refuses)."""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.browser.support import (
    DESKTOP,
    PHONE,
    axe_violations,
    describe_violations,
    horizontal_overflow,
    menu_lines,
    widest_elements,
)

ROLES = ("coordinator", "idel", "gp", "specialist", "pharmacist", "admin")
# Files, not pages: the browser would download them (others are recognised when the download starts).
DOWNLOADS = (".pdf", ".csv", ".ics", ".cda", ".xml", ".zip")


def linked_pages(page) -> list[str]:
    """The site's pages the menu and the main part of the page link to, each once, in the order shown."""
    hrefs = page.eval_on_selector_all("header a[href], main a[href]", "links => links.map(a => a.href)")
    paths = []
    for href in hrefs:
        parts = urlsplit(href)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if parts.netloc != urlsplit(page.url).netloc or parts.path.endswith(DOWNLOADS) or path in paths:
            continue
        paths.append(path)
    return paths


def axe_problems(page, where: str) -> list[str]:
    violations = axe_violations(page)
    return [f"{where}: axe-core\n{describe_violations(violations)}"] if violations else []


def layout_problems(page, where: str) -> list[str]:
    problems = []
    if horizontal_overflow(page) > 0:
        problems.append(f"{where}: wider than the screen: {', '.join(widest_elements(page))}")
    if menu_lines(page) != 1:
        problems.append(f"{where}: the menu takes {menu_lines(page)} lines")
    return problems


def menu_problems(page_at, login: str, shoot) -> list[str]:
    """The menu itself, checked once: on a laptop in full, on a phone unfolded."""
    page = page_at(DESKTOP, login)
    page.goto("/")
    problems = axe_problems(page, "/ (laptop)")
    page = page_at(PHONE, login)
    page.goto("/")
    page.get_by_text("Menu", exact=True).click()
    shoot(page, "menu")
    problems += axe_problems(page, "/ (phone, menu open)")
    page.get_by_text("Menu", exact=True).click()
    return problems


@pytest.mark.parametrize("role", ROLES)
def test_every_page_of_the_menu_and_the_home_page(role, people, browsing, page_at, shoot):
    login = people.by_role()[role]
    problems = menu_problems(page_at, login, shoot)
    errors = browsing.console_errors[login]
    paths = list(dict.fromkeys(["/", *linked_pages(page_at(DESKTOP, login))]))
    for path in paths:
        # Loaded on the phone (axe checks what a phone shows: the folded menu, the tables that scroll), then
        # widened to a laptop's screen.
        page = page_at(PHONE, login)
        try:
            response = page.goto(path)
        except PlaywrightError as error:
            if "Download is starting" in error.message:
                continue  # a document (a PDF, an attachment) whose address does not say so
            raise
        if response is None or response.status >= 400:
            problems.append(f"{path}: HTTP {response.status if response else 'no response'}")
            continue
        problems += layout_problems(page, f"{path} (phone)")
        problems += axe_problems(page, f"{path} (phone)")
        shoot(page, path)
        page = page_at(DESKTOP, login)
        problems += layout_problems(page, f"{path} (laptop)")
        shoot(page, path)
        if errors:
            problems.append(f"{path}: console errors {errors}")
            errors.clear()
    assert not problems, f"{role} ({len(paths)} pages):\n" + "\n".join(problems)
