"""The IDEL's and the specialist's requests of the P7 load (bench/p7/locustfile.py), reads and writes, over the
territory of tests/read_paths.py with `per_route` fresh sessions for each write that uses one up (a confirmation
needs a proposed visit, a check-in a confirmed one, a draft a done session, a signature a written draft): what
bench/write_paths.py times. The checklist and the PATCH are made again on one visit and one draft, as a client
saving twice would."""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from hub.models import AppointmentState
from tests import factories, read_paths
from workflows import reports

WRITTEN = {"acts": "Téléconsultation cardiologique, ECG lu à distance.", "conclusion": "Pas de décompensation."}
CHECKLIST = {"camera": True, "sound": True, "light": True, "privacy": True}
CHECK_IN = {"identity_method": "document", "patient_location": "Domicile", "callback_phone": "0612345678"}


@dataclass
class Scene:
    base: read_paths.Scene
    proposed: list[int] = field(default_factory=list)
    confirmed: list[int] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    drafts: list[int] = field(default_factory=list)

    @property
    def tokens(self) -> dict[str, str]:
        return self.base.tokens


def _start(n: int) -> dt.datetime:
    """Ten a day from 08:00, an hour apart, from the week after read_paths' visits: the IDEL never holds two."""
    day = factories.MONDAY_14H.replace(hour=8) + dt.timedelta(days=7 + n // 10)
    return day + dt.timedelta(hours=n % 10)


def build(session, cpts, *, per_route: int) -> Scene:
    base = read_paths.build(session, cpts, visits=8)
    t = base.territory
    scene = Scene(base)
    wanted = [
        (AppointmentState.PROPOSED, scene.proposed),
        (AppointmentState.CONFIRMED, scene.confirmed),
        (AppointmentState.DONE, scene.done),
        (AppointmentState.DONE, None),  # a draft each, written, to sign
    ]
    n = 0
    for state, ids in wanted:
        for _ in range(per_route):
            patient = factories.consenting_patient(session, t.cpts, recorded_by=t.coordinator, phone="0612345678")
            factories.in_care_team(session, patient, t.idel)
            visit = factories.visit(session, t, _start(n), state=state, patient_row=patient)
            n += 1
            if ids is not None:
                ids.append(visit.id)
                continue
            draft = reports.start_report(session, base.specialist, visit)
            reports.update_draft(session, base.specialist, draft, **WRITTEN)
            scene.drafts.append(draft.id)
    session.commit()
    return scene


@dataclass(frozen=True)
class Route:
    name: str
    who: str
    method: str
    url: Callable[[Scene], str]
    body: dict | None = None
    status: tuple[int, ...] = (200,)


def _first_confirmed(scene: Scene) -> int:
    return next(v.id for v in scene.base.visits if v.state is AppointmentState.CONFIRMED)


ROUTES = [
    Route("GET appointment", "idel", "GET", lambda s: f"/api/v1/appointments/{s.confirmed[-1]}"),
    Route("POST confirm", "idel", "POST", lambda s: f"/api/v1/appointments/{s.proposed.pop()}/confirm"),
    Route(
        "POST checklist",
        "idel",
        "POST",
        lambda s: f"/api/v1/appointments/{_first_confirmed(s)}/checklist",
        CHECKLIST,
    ),
    Route("POST check-in", "idel", "POST", lambda s: f"/api/v1/appointments/{s.confirmed.pop()}/check-in", CHECK_IN),
    Route("GET report", "specialist", "GET", lambda s: f"/api/v1/reports/{s.drafts[0]}"),
    Route("POST report draft", "specialist", "POST", lambda s: "/api/v1/reports", None, (201,)),
    Route("PATCH report", "specialist", "PATCH", lambda s: f"/api/v1/reports/{s.drafts[0]}", WRITTEN),
    Route("POST sign", "specialist", "POST", lambda s: f"/api/v1/reports/{s.drafts.pop()}/sign"),
]


def request(client, scene: Scene, route: Route):
    """The route's request as its user makes it, with a Bearer token; a draft is asked for a done session's."""
    body = {"appointment_id": scene.done.pop()} if route.name == "POST report draft" else route.body
    headers = {"Authorization": f"Bearer {scene.tokens[route.who]}"}
    return client.open(route.url(scene), method=route.method, json=body, headers=headers)
