"""Browser tests: Debian's Chromium driven by Playwright against the real application, served on loopback by a
background thread, on a database of its own holding the demo territory.

The data is committed: the browser's requests are transactions of their own, so the suite's rolled-back
transaction cannot be shared. A database of its own (a second SQLite file, or on PostgreSQL a second database
beside TEST_DATABASE_URL's) keeps those rows away from the other tests, which count rows and load the demo.

Skipped, not failed, when /usr/bin/chromium is missing: `make test` installs it when the machine allows it."""

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import time_machine
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from werkzeug.serving import WSGIRequestHandler, make_server

from hub import create_app, migrate
from hub.db import make_engine, session_scope, utcnow
from hub.demo import load_demo, load_demo_schedule
from hub.models import Appointment, Patient, Profession, Professional, User
from tests import factories
from tests.browser.support import DESKTOP, log_in, resize, screenshot_path
from tests.conftest import TEST_DATABASE_URL, test_config

CHROMIUM = "/usr/bin/chromium"
# The morning of a session day: Monday 16 November 2026, 09:00 in Paris; the cardiology session is at 14:00.
CLOCK = factories.NOW


def _sibling_database(url: str) -> str:
    """A fresh PostgreSQL database named after the suite's, `<name>_browser`, on the same server."""
    suite = make_url(url)
    name = f"{suite.database}_browser"
    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return suite.set(database=name).render_as_string(hide_password=False)


def _drop_sibling_database(url: str) -> None:
    browser = make_url(url)
    engine = make_engine(TEST_DATABASE_URL or url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{browser.database}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="package")
def browser_database_url() -> Iterator[str]:
    if TEST_DATABASE_URL:
        url = _sibling_database(TEST_DATABASE_URL)
        yield url
        _drop_sibling_database(url)
        return
    with tempfile.TemporaryDirectory() as tmp_root:
        yield f"sqlite:///{tmp_root}/hub-browser.sqlite3"


@pytest.fixture(scope="package")
def browser_app(browser_database_url):
    """The application with the demo territory and its schedule, laid down at the tests' clock."""
    engine = make_engine(browser_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    application = create_app(test_config(browser_database_url))
    zone = application.config["HUB"]["TIMEZONE"]
    with time_machine.travel(CLOCK, tick=False), session_scope(application.extensions["hub.sessions"]) as session:
        summary = load_demo(session, zone=zone)
        load_demo_schedule(session, summary.cpts_id, now=utcnow(), zone=zone)
    yield application
    application.extensions["hub.engine"].dispose()


@pytest.fixture(scope="package")
def sessions(browser_app):
    """Sessions on the browser tests' database, to read what the pages did (their commits are real)."""
    return browser_app.extensions["hub.sessions"]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        """One line per request would bury the failures' own output; errors are still logged."""


@pytest.fixture(scope="package")
def base_url(browser_app) -> Iterator[str]:
    """The application served on a free loopback port by a thread of this process, so that it reads the
    tests' clock (time-machine moves the process's clock, every thread's)."""
    server = make_server("127.0.0.1", 0, browser_app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="browser-tests-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """One browser for all the browser tests (each person gets a context of their own)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: `make test` installs Debian's chromium when the machine allows it")
    # French date fields (jj/mm/aaaa) as a French user's browser shows them; Chromium's sandbox refuses to start
    # as root (CI and these machines run as root).
    arguments = ["--lang=fr-FR", *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=arguments)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def clock():
    """Every browser test starts on the tests' Monday morning, frozen; `clock.move_to(…)` moves the server too."""
    with time_machine.travel(CLOCK, tick=False) as traveller:
        yield traveller


@dataclass(frozen=True)
class People:
    """The demo's logins the journeys act as, one per role, chosen around Monday's cardiology session."""

    coordinator: str
    admin: str
    idel: str  # the IDEL of the session's first visit
    gp: str  # that patient's médecin traitant
    specialist: str  # the session's cardiologist
    pharmacist: str

    def by_role(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@pytest.fixture(scope="package")
def people(sessions) -> People:
    with sessions() as session:
        visit = session.scalars(
            select(Appointment).where(Appointment.starts_at >= CLOCK).order_by(Appointment.starts_at)
        ).first()
        assert visit is not None and visit.accompanying_id, "the demo books this afternoon's session"

        def login_of(professional_id) -> str:
            return session.scalars(select(User.login).where(User.professional_id == professional_id)).one()

        patient = session.get_one(Patient, visit.patient_id)
        pharmacist = session.scalars(
            select(Professional.id)
            .where(Professional.profession == Profession.PHARMACIST)
            .order_by(Professional.id)
            .limit(1)
        ).one()
        return People(
            coordinator="coordination",
            admin="admin",
            idel=login_of(visit.accompanying_id),
            gp=login_of(patient.attending_gp_id),
            specialist=login_of(visit.performer_id),
            pharmacist=login_of(pharmacist),
        )


class Pages:
    """One context (cookies) and one page per person for one test, logged in through the login pages at its first
    use. Made anew for each test: a test that moves the clock a week ahead would leave the next one a session that
    idled out or a second factor spent in its future."""

    def __init__(self, browser: Browser, base_url: str, sessions):
        self.browser, self.base_url, self.sessions = browser, base_url, sessions
        self.contexts: dict[str | None, BrowserContext] = {}
        self.pages: dict[str | None, Page] = {}
        self.console_errors: dict[str | None, list[str]] = {}

    def page(self, width: int, login: str | None, *, log_in_again: bool = False) -> Page:
        if login not in self.pages:
            context = self.browser.new_context(base_url=self.base_url, locale="fr-FR", timezone_id="Europe/Paris")
            page = context.new_page()
            errors = self.console_errors.setdefault(login, [])
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            self.contexts[login], self.pages[login] = context, page
            log_in_again = login is not None
        page = resize(self.pages[login], width)
        if log_in_again:
            log_in(page, self.base_url, self.sessions, login)
        return page

    def close(self) -> None:
        for context in self.contexts.values():
            context.close()


@pytest.fixture
def browsing(chromium, base_url, sessions) -> Iterator[Pages]:
    pages = Pages(chromium, base_url, sessions)
    yield pages
    pages.close()


@pytest.fixture
def page_at(browsing) -> Callable[..., Page]:
    """`page_at(390, people.idel)`: that person's page (logged in), at that width; `page_at(1366)`: nobody's."""

    def page_at(width: int = DESKTOP, login: str | None = None, *, log_in_again: bool = False) -> Page:
        return browsing.page(width, login, log_in_again=log_in_again)

    page_at.base_url = browsing.base_url
    return page_at


@pytest.fixture
def shoot(request) -> Callable[[Page, str], None]:
    """`shoot(page, "planning")`: the page as it is now, numbered in the test's own screenshots folder."""
    steps = iter(range(1, 1000))
    # Last run's screenshots of this test go: what the folder shows is this run.
    shutil.rmtree(screenshot_path(request.node.name, 0, "", 0).parent, ignore_errors=True)

    def shoot(page: Page, label: str) -> None:
        path = screenshot_path(request.node.name, next(steps), label, page.viewport_size["width"])
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=path, full_page=True)

    return shoot
