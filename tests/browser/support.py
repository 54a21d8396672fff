"""What the browser tests check on every page they visit, and how they log a person in.

Kept apart from conftest.py so that the journeys import them by name."""

import re
from pathlib import Path

import pyotp
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from hub.demo.territory import DEMO_PASSWORD, demo_totp_secret
from hub.models import LoginAttempt, User, UserSession

DESKTOP = 1366
PHONE = 390
# A laptop's and a phone's screen (the height matters only to the screenshots).
HEIGHTS = {DESKTOP: 768, PHONE: 844}
SCREENSHOTS = Path(__file__).parent / "screenshots"
# What a person notices: the rest of axe's findings (moderate, minor) are advice, not failures.
BLOCKING_IMPACTS = ("serious", "critical")

_axe = Axe()


def resize(page: Page, width: int) -> Page:
    page.set_viewport_size({"width": width, "height": HEIGHTS.get(width, 800)})
    return page


def horizontal_overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0 when it fits)."""
    return page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")


def widest_elements(page: Page) -> list[str]:
    """The elements that stick out past the window's right edge, to name them in a failure."""
    return page.evaluate(
        """() => {
            const clipped = e => {
                for (let a = e.parentElement; a; a = a.parentElement) {
                    if (getComputedStyle(a).overflowX !== 'visible') return true;
                }
                return false;
            };
            return [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !clipped(e))
            .filter(e => e.parentElement.getBoundingClientRect().right <= window.innerWidth + 1)
            .slice(0, 5)
            .map(e => {
                const id = e.id ? '#' + e.id : '';
                const classes = e.className ? '.' + String(e.className).split(' ').join('.') : '';
                return `${e.tagName.toLowerCase()}${id}${classes} (${Math.round(e.getBoundingClientRect().right)} px)`;
            });
        }"""
    )


def assert_no_horizontal_scroll(page: Page) -> None:
    overflow = horizontal_overflow(page)
    assert overflow <= 0, (
        f"{page.url} is {overflow} px wider than its {page.viewport_size['width']} px window: "
        + ", ".join(widest_elements(page))
    )


def menu_lines(page: Page) -> int:
    """How many lines the menu takes on the screen: the links of the wide menu, or on a small screen the bar with
    the folded menu (brand and « Menu »), in lines of its tallest item."""
    return page.evaluate(
        """() => {
            const wide = [...document.querySelectorAll('nav.hub-wide li')].filter(li => li.offsetParent !== null);
            if (wide.length) return new Set(wide.map(li => li.getBoundingClientRect().top)).size;
            const bar = document.querySelector('.hub-bar');
            const style = getComputedStyle(bar);
            const inner = bar.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
            const tallest = Math.max(...[...bar.children].map(child => child.getBoundingClientRect().height));
            return Math.round(inner / tallest);
        }"""
    )


def assert_menu_on_one_line(page: Page) -> None:
    lines = menu_lines(page)
    assert lines == 1, f"{page.url}: the menu takes {lines} lines at {page.viewport_size['width']} px"


def axe_violations(page: Page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    results = _axe.run(page)
    return [v for v in results.response["violations"] if v["impact"] in BLOCKING_IMPACTS]


def describe_violations(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {' '.join(node['target'])}: {node['html'][:160]}")
    return "\n".join(lines)


def check_axe(page: Page) -> None:
    violations = axe_violations(page)
    assert not violations, f"axe-core on {page.url}:\n{describe_violations(violations)}"


def screenshot_path(test_name: str, step: int, label: str, width: int) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:60] or "accueil"
    return SCREENSHOTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name) / f"{step:02d}-{slug}-{width}.png"


def forget_earlier_logins(sessions: sessionmaker[Session], login: str) -> None:
    """Each test logs in afresh on a clock it froze or moved back, which a person never does: the step of the
    second factor an earlier test spent, its failed attempts and its sessions (a login that began at the very
    instant an earlier one completed is refused, S5) are forgotten first."""
    with sessions.begin() as session:
        user_id = session.scalar(select(User.id).where(User.login == login))
        session.execute(update(User).where(User.id == user_id).values(totp_last_step=None))
        session.execute(delete(LoginAttempt).where(LoginAttempt.login == login))
        session.execute(delete(UserSession).where(UserSession.user_id == user_id))


def totp_code(login: str) -> str:
    """The code the person's authenticator shows now (the server's clock: the same process)."""
    return pyotp.TOTP(demo_totp_secret(login)).now()


def log_in(page: Page, base_url: str, sessions: sessionmaker[Session], login: str) -> None:
    """Through the two login pages, as the person does: password, then the code of their authenticator."""
    forget_earlier_logins(sessions, login)
    page.goto(f"{base_url}/login")
    page.get_by_label("Identifiant").fill(login)
    page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Continuer").click()
    assert page.url.startswith(f"{base_url}/login/totp"), (
        f"{login}'s password refused: {page.locator('main').inner_text()}"
    )
    page.get_by_label("Code à 6 chiffres").fill(totp_code(login))
    with page.expect_navigation():
        page.get_by_role("button", name="Se connecter").click()
    assert page.url == f"{base_url}/", f"{login} not logged in: {page.locator('main').inner_text()}"
