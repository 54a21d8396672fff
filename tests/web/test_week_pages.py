"""The planning's week and « Mon agenda » read as plain rows, the layout's menu worked out once per kind of user
(issue 17, P7): each page in two statements (the session, then its one read) besides the audit, whatever the
number of rows; the same content as the entities' own labels and addresses."""

import datetime as dt
import re

import pytest
from flask import url_for

from hub.models import Appointment, AppointmentState, Profession, Role, appointment_state_label
from hub.web import layout
from hub.web.pages import fixed_url, row_url
from tests import factories, read_paths
from tests.queries import forbid_lazy_loads, statements_on
from tests.web.test_group_session_pages import book_session_of_four

pytestmark = pytest.mark.usefixtures("clock")


def _page(client, engine, scene, name) -> tuple[str, list[str]]:
    route = next(route for route in read_paths.ROUTES if route.name == name)
    read_paths.request(client, scene, route)  # the statements are built and the layout worked out once
    with forbid_lazy_loads(), statements_on(engine) as seen:
        response = read_paths.request(client, scene, route)
    assert response.status_code == 200
    return response.get_data(as_text=True), seen


@pytest.mark.parametrize(
    "name", ["page /planning", "page /agenda (IDEL, week)", "page /agenda (specialist, week)"]
)  # fmt: skip
def test_the_week_pages_read_the_session_then_the_week_in_one_statement(client, engine, db_session, cpts, name):
    """The session's row, then the week: the planning read its programs, slots and appointments in three
    statements, the agenda its appointments and their referral letters in two."""
    scene = read_paths.build(db_session, cpts, visits=6)
    page, seen = _page(client, engine, scene, name)
    assert len(seen) == 2, "\n".join(seen)
    assert "user_sessions" in seen[0]
    assert all(visit.patient.display_name in page for visit in _in_the_week(scene))


def _in_the_week(scene) -> list[Appointment]:
    monday = factories.MONDAY_14H.replace(hour=0)
    return [visit for visit in scene.visits if monday <= visit.starts_at < monday + dt.timedelta(days=7)]


def test_the_planning_shows_each_visit_as_its_entity_tells_it(client, engine, db_session, cpts):
    scene = read_paths.build(db_session, cpts, visits=8)
    page, _seen = _page(client, engine, scene, "page /planning")
    shown = _in_the_week(scene)
    assert shown
    for visit in shown:
        db_session.refresh(visit)
        assert f'<a href="/planning/appointments/{visit.id}">Détails' in page
        assert f">{appointment_state_label(visit)}</span>" in page
        assert f'<span class="small">{visit.patient.display_name}</span>' in page
        idel = visit.accompanying.full_name if visit.accompanying else "à trouver"
        assert f'<span class="small">IDEL : {idel}</span>' in page


def test_the_agenda_links_a_group_session_and_its_participants(auth, db_session, territory):
    slot, patients = book_session_of_four(db_session, territory)
    performer = factories.user(db_session, territory.cpts, Role.PROFESSIONAL, professional_row=territory.cardiologist)
    auth.login(performer)
    page = auth.client.get("/agenda?day=2026-11-23&view=week").get_data(as_text=True)
    booked = db_session.query(Appointment).filter_by(slot_id=slot.id).order_by(Appointment.id).all()
    assert page.count("Séance de groupe — 4/6 participants") == 1
    for appointment in booked:
        assert f'<a href="/visits/{appointment.id}">{appointment.patient.display_name}<span' in page
    assert all(appointment.state is AppointmentState.PROPOSED for appointment in booked) and patients


def test_a_row_url_is_the_address_url_for_makes(app):
    with app.test_request_context("/"):
        visit = row_url("visits.show", "appointment_id")
        book = row_url("planning.book", "slot_id")
        for row_id in (1, 42, 2**31 - 2):
            assert visit(row_id) == url_for("visits.show", appointment_id=row_id)
            assert book(row_id) == url_for("planning.book", slot_id=row_id)


@pytest.mark.parametrize("root", ["", "/hub"])
def test_a_fixed_url_is_the_address_url_for_makes_at_each_root(app, root):
    """Kept per root: the same process may answer under two prefixes (a proxy's path)."""
    for script_root in (root, "/other", root):
        with app.test_request_context("/", base_url=f"http://localhost{script_root}"):
            for endpoint in ("planning.week", "planning.program_list", "resources.index", "visits.done"):
                assert fixed_url(endpoint) == url_for(endpoint)
            assert row_url("planning.program", "program_id")(7) == url_for("planning.program", program_id=7)


def _hrefs(page: str) -> set[str]:
    return set(re.findall(r'(?:href|action)="([^"]*)"', page))


@pytest.mark.parametrize("root", ["", "/hub"])
def test_the_week_and_the_visits_link_where_url_for_says(app, auth, db_session, territory, root):
    """The planning's tabs, its weeks, its form and its programs' links, and « Mes visites »' links, made once per
    process and root: the addresses url_for makes, under a prefix too."""
    base_url = f"http://localhost{root}"
    auth.login(territory.coordinator)
    week = auth.client.get("/planning?week=2026-11-25", base_url=base_url).get_data(as_text=True)
    auth.login(territory.idel_user)
    visits = auth.client.get("/visits", base_url=base_url).get_data(as_text=True)
    with app.test_request_context("/", base_url=base_url):
        programs = {url_for("planning.program", program_id=territory.program.id)}
        tabs = {url_for(endpoint) for endpoint in ("planning.week", "planning.program_list", "resources.index")}
        weeks = {url_for("planning.week", week=day) for day in ("2026-11-16", "2026-11-30")}
        day_sheet = url_for("visits.day_sheet", day="2026-11-16")
        done = url_for("visits.done")
    assert programs and programs | tabs | weeks <= _hrefs(week)
    assert {day_sheet, done} <= _hrefs(visits)


@pytest.mark.parametrize("root", ["", "/hub"])
def test_the_page_of_a_menu_entry_is_marked_current_under_a_prefix_too(app, auth, territory, root):
    """url_for writes the menu's addresses with the application's root (SCRIPT_NAME); request.path has none."""
    base_url = f"http://localhost{root}"
    auth.login(territory.coordinator)
    week = auth.client.get("/planning", base_url=base_url).get_data(as_text=True)
    profile = auth.client.get("/me", base_url=base_url).get_data(as_text=True)
    with app.test_request_context("/", base_url=base_url):
        planning, me = url_for("planning.week"), url_for("me.profile")
    assert week.count(f'<a href="{planning}" aria-current="page">Planning</a>') == 2  # the wide menu and the folded
    assert f'<a href="{me}" aria-current="page">' in profile


@pytest.mark.parametrize(
    ("who", "shown", "hidden"),
    [
        ("coordinator", ["Patients", "Planning", "Envois", "Annuaire"], ["Mes visites", "Matériel et lieux"]),
        ("nurse", ["Mes visites", "Mon agenda", "Ma séance"], ["Planning", "Nouvel adressage"]),
        ("gp", ["Nouvel adressage", "Mes adressages", "Mes rémunérations"], ["Rémunérations"]),
        ("admin", ["Administration", "Matériel et lieux", "Annuaire"], ["Planning", "Mes visites"]),
    ],
)  # fmt: skip
def test_the_menu_is_worked_out_once_per_kind_of_user(app, db_session, cpts, who, shown, hidden):
    users = {
        "coordinator": lambda: factories.user(db_session, cpts, Role.COORDINATOR),
        "nurse": lambda: factories.clinician(db_session, cpts),
        "gp": lambda: factories.clinician(db_session, cpts, Profession.GENERAL_PRACTITIONER),
        "admin": lambda: factories.user(db_session, cpts, Role.ADMIN),
    }
    user = users[who]()
    with app.test_request_context("/"):
        first = layout.page_layout(user)
        labels = [label for _href, label in first.menu]
        assert all(label in labels for label in shown) and not any(label in labels for label in hidden)
        assert layout.page_layout(user) is first  # kept, not worked out again


def test_the_menu_links_mark_the_page_they_are_on_and_are_kept(app, db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    with app.test_request_context("/"):
        first = layout.page_layout(user)
        week, patients = url_for("planning.week"), url_for("patients.index")
        on_week = first.menu_links(week)
        assert f'<li><a href="{week}" aria-current="page">Planning</a></li>' in on_week
        assert f'<li><a href="{patients}">Patients</a></li>' in on_week
        assert on_week.count("aria-current") == 1
        elsewhere = first.menu_links("/patients/7")  # a page of no menu entry: none current
        assert "aria-current" not in elsewhere and elsewhere.count("<li>") == len(first.menu)
        assert first.menu_links(week) is on_week and first.menu_links("/me") is elsewhere
