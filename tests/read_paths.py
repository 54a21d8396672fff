"""The read requests of the P7 load (bench/p7/locustfile.py) over a territory of a given size: what
tests/web/test_read_hot_paths.py checks (statements constant in the size, no lazy load) and what
bench/read_paths.py times. A territory with `visits` sessions has that many patients, visits in every state
spread over the week (the planning's, the IDEL's, the agendas'), a signed report per done session, referrals to
triage and messages in the outbox."""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from hub.models import AppointmentState, Profession, Role
from hub.services import accounts, calendar_feeds
from tests import factories

WEEK = factories.MONDAY_14H.date().isoformat()
_STATES = (
    AppointmentState.PROPOSED,
    AppointmentState.CONFIRMED,
    AppointmentState.CHECKED_IN,
    AppointmentState.DONE,
)


@dataclass
class Scene:
    territory: factories.Territory
    specialist: object
    visits: list
    reports: list
    feed: str
    tokens: dict[str, str]
    cookies: dict[str, str]


def _starts(n: int) -> dt.datetime:
    """One in three today from 14:00 (eight at most), the others over the next week's days from 08:00, an hour
    apart: the patients' IDEL never holds two at once (84 visits at most)."""
    if n % 3 == 0 and n // 3 < 8:
        return factories.NOW.replace(hour=14 + n // 3)
    return factories.MONDAY_14H.replace(hour=8 + n // 7) + dt.timedelta(days=n % 7)


def grow(session, t: factories.Territory, specialist, scene: Scene | None, *, visits: int) -> tuple[list, list]:
    """`visits` more sessions of the territory's program with their patients, reports, referrals and messages."""
    start = len(scene.visits) if scene else 0
    made, reports = [], []
    gp = factories.clinician(session, t.cpts, Profession.GENERAL_PRACTITIONER)
    for n in range(start, start + visits):
        patient = factories.consenting_patient(
            session, t.cpts, recorded_by=t.coordinator, commune_insee="24571", phone="0612345678"
        )
        factories.in_care_team(session, patient, t.idel)
        state = _STATES[n % len(_STATES)]
        visit = factories.visit(session, t, _starts(n), state=state, patient_row=patient)
        made.append(visit)
        if state is AppointmentState.DONE:
            reports.append(
                factories.report(
                    session, patient, author=t.cardiologist, created_by=specialist, signed=True, appointment_row=visit
                )
            )
        factories.referral(session, patient, author=gp)
        factories.outbox_message(session, t.cpts)
    return made, reports


def build(session, cpts, *, visits: int) -> Scene:
    t = factories.territory(session, cpts)
    specialist = factories.user(session, cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
    made, reports = grow(session, t, specialist, None, visits=visits)
    _feed, raw = calendar_feeds.create_feed(session, t.idel_user, t.idel)
    people = {"coordinator": t.coordinator, "idel": t.idel_user, "specialist": specialist}
    tokens = {who: accounts.create_api_token(session, user, name="read paths")[1] for who, user in people.items()}
    cookies = {who: accounts.start_session(session, user) for who, user in people.items()}
    session.commit()
    return Scene(t, specialist, made, reports, raw, tokens, cookies)


def enlarge(session, scene: Scene, *, visits: int) -> None:
    made, reports = grow(session, scene.territory, scene.specialist, scene, visits=visits)
    scene.visits += made
    scene.reports += reports
    session.commit()


@dataclass(frozen=True)
class Route:
    name: str
    who: str
    api: bool
    url: Callable[[Scene], str]


def _proposed(scene: Scene) -> int:
    return next(v.id for v in scene.visits if v.state is AppointmentState.PROPOSED)


ROUTES = [
    Route("page /planning", "coordinator", False, lambda s: f"/planning?week={WEEK}"),
    Route(
        "GET slots",
        "coordinator",
        True,
        lambda s: f"/api/v1/programs/{s.territory.program.id}/slots?from={factories.NOW.date()}&to={WEEK[:8]}30",
    ),
    Route("GET patient (coordinator)", "coordinator", True, lambda s: f"/api/v1/patients/{s.visits[0].patient_id}"),
    Route("GET patient (IDEL)", "idel", True, lambda s: f"/api/v1/patients/{s.visits[0].patient_id}"),
    Route("GET candidates", "coordinator", True, lambda s: f"/api/v1/appointments/{_proposed(s)}/candidates"),
    Route("page /visits", "idel", False, lambda s: "/visits"),
    Route("GET appointment", "idel", True, lambda s: f"/api/v1/appointments/{_proposed(s)}"),
    Route("GET report", "specialist", True, lambda s: f"/api/v1/reports/{s.reports[0].id}"),
    Route("GET outbox", "coordinator", True, lambda s: "/api/v1/outbox?per_page=20"),
    Route("GET desk", "coordinator", True, lambda s: "/api/v1/me/desk"),
    Route("page / (coordinator)", "coordinator", False, lambda s: "/"),
    Route("page / (IDEL)", "idel", False, lambda s: "/"),
    Route("page /agenda (IDEL, week)", "idel", False, lambda s: f"/agenda?view=week&day={WEEK}"),
    Route("page /agenda (specialist, week)", "specialist", False, lambda s: f"/agenda?view=week&day={WEEK}"),
    Route("GET ical", "idel", False, lambda s: f"/ical/{s.feed}.ics"),
]


def request(client, scene: Scene, route: Route):
    """The route's GET as its user makes it: a Bearer token for the API, the session cookie for a page."""
    if route.api:
        return client.get(route.url(scene), headers={"Authorization": f"Bearer {scene.tokens[route.who]}"})
    with client.session_transaction() as browser_session:
        browser_session["auth_token"] = scene.cookies[route.who]
        browser_session["sid"] = f"read-paths-{route.who}"
    return client.get(route.url(scene))
