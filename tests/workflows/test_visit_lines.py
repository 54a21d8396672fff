"""« Mes visites », the visits done and the accompanying professionals' desks list their visits as rows
(workflows.visits.VisitLine), not as entities with six relationships loaded (issue 17, P7): a line must say what
its appointment says, and a list is one statement whatever its length, the telehealth consent included."""

import datetime as dt

import pytest
from sqlalchemy import select

from hub.models import (
    Appointment,
    AppointmentState,
    ConsentKind,
    Patient,
    PlaceKind,
    Profession,
    ResourceKind,
    appointment_state_label,
)
from hub.services.identity import consent_in_force, has_valid_consent
from hub.web.states import allows
from tests import factories, read_paths
from tests.queries import forbid_lazy_loads, statements_on
from workflows import appointments, rituals, visits

pytestmark = pytest.mark.usefixtures("clock")

WIDE = (factories.NOW - dt.timedelta(days=1), factories.NOW + dt.timedelta(days=3))


def _variety(db_session, t) -> tuple[list[Appointment], object]:
    """Visits unlike each other on every point a line shows: with or without a slot, a room, a kit, used names,
    a consent in force, withdrawn or never given, a télésoin act; offered, today's, coming and done."""
    coordinator = t.coordinator
    room = factories.resource(db_session, t.cpts, ResourceKind.ROOM, name="Salle 2", address="1 place du Marché")
    kit = factories.resource(db_session, t.cpts)
    renamed = factories.patient(
        db_session, t.cpts, used_last_name="Martin", used_first_name="Lou", address="2 rue Haute"
    )
    factories.consent(db_session, renamed, recorded_by=coordinator, withdrawn_at=factories.now())
    unasked = factories.patient(db_session, t.cpts)
    bare = {"performer": t.cardiologist, "accompanying": t.idel, "created_by": coordinator}
    made = [
        factories.appointment(
            db_session, patient_row=renamed, **bare, starts_at=factories.NOW + dt.timedelta(hours=2),
            state=AppointmentState.PROPOSED, place_kind=PlaceKind.DEDICATED_PLACE, room_id=room.id, kit_id=kit.id,
        ),
        factories.appointment(
            db_session, patient_row=unasked, **bare, starts_at=factories.NOW + dt.timedelta(hours=3),
            state=AppointmentState.CHECKED_IN,
        ),
        factories.appointment(
            db_session, patient_row=t.patient, **bare, starts_at=factories.NOW + dt.timedelta(days=1),
        ),
        factories.appointment(
            db_session, patient_row=t.patient, **bare, starts_at=factories.NOW - dt.timedelta(hours=20),
            state=AppointmentState.DONE, accompaniment_starts_at=None, accompaniment_ends_at=None,
        ),
        factories.visit(db_session, t, starts_at=factories.NOW + dt.timedelta(days=2)),
    ]  # fmt: skip
    kine = factories.professional(db_session, t.cpts, Profession.PHYSIOTHERAPIST)
    made.append(
        factories.telesoin_session(db_session, t, performer=kine, starts_at=factories.NOW + dt.timedelta(hours=1))
    )
    db_session.commit()
    return made, kine


def test_a_line_says_what_its_appointment_says(db_session, territory):
    made, kine = _variety(db_session, territory)
    lines = []
    for professional in (territory.idel, kine):
        found = visits.visit_lists(db_session, professional.id, *WIDE)
        lines += found.offered + found.today + found.upcoming + visits.done_visits(db_session, professional.id)
    assert sorted(line.id for line in lines) == sorted(a.id for a in made)
    for line in lines:
        a = db_session.get(Appointment, line.id)
        assert (line.state, line.kind, line.place_kind, line.starts_at, line.ends_at) == (
            a.state, a.kind, a.place_kind, a.starts_at, a.ends_at,
        )  # fmt: skip
        assert line.accompaniment_window == a.accompaniment_window
        assert line.accompaniment_starts_at == a.accompaniment_starts_at
        assert line.telesoin_act_label == a.telesoin_act_label
        assert line.patient.display_name == a.patient.display_name
        assert line.patient.address == a.patient.address
        assert line.performer.full_name == a.performer.full_name
        assert line.program_name == (a.slot.program.name if a.slot else None)
        assert line.room_name == (a.room.name if a.room else None)
        assert line.kit_name == (a.kit.name if a.kit else None)
        assert line.lacks_remote_consent == appointments.lacks_remote_consent(a)
        assert appointment_state_label(line) == appointment_state_label(a)
        assert rituals.applies_to(line) == rituals.applies_to(a)
        assert allows(line, "complete") == allows(a, "complete")
    # The variety is real: both answers of each question above are met.
    assert {line.lacks_remote_consent for line in lines} == {True, False}
    assert {line.room_name is None for line in lines} == {True, False}
    assert {line.program_name is None for line in lines} == {True, False}
    assert {rituals.applies_to(line) for line in lines} == {True, False}


@pytest.mark.parametrize("route", ["page /visits", "page / (IDEL)"])
def test_the_visits_are_one_statement_with_their_consents_and_nothing_loads_lazily(
    client, engine, db_session, cpts, route
):
    scene = read_paths.build(db_session, cpts, visits=8)
    (chosen,) = [r for r in read_paths.ROUTES if r.name == route]
    read_paths.request(client, scene, chosen)
    with forbid_lazy_loads() as lazy, statements_on(engine) as seen:
        response = read_paths.request(client, scene, chosen)
    assert response.status_code == 200 and not lazy
    page = response.get_data(as_text=True)
    offered = _offered(scene)
    assert offered and all(f'href="/visits/{a.id}"' in page for a in offered)
    reading = [s for s in seen if "FROM appointments" in s or "FROM consents" in s]
    # Before: the appointments joined to five tables, then the patients' consents in a second SELECT.
    assert len(reading) == 1, "\n".join(s[:150] for s in reading)


def _offered(scene) -> list[Appointment]:
    """The territory's visits waiting for the IDEL's answer: both pages list them, each with its link."""
    idel = scene.territory.idel.id
    return [
        a
        for a in scene.visits
        if a.state is AppointmentState.PROPOSED and a.accompanying_id == idel and a.starts_at >= factories.NOW
    ]


def test_a_consent_in_force_is_one_rule_in_sql_and_in_python(db_session, territory):
    """The lines' EXISTS (identity.consent_in_force) and valid_consent, which require_remote_consent applies, agree:
    none, withdrawn, in force, withdrawn then given again, and only one of another kind."""
    t = territory
    given = {
        "none": [],
        "withdrawn": [{"withdrawn_at": factories.now()}],
        "in force": [{}],
        "given again": [{"withdrawn_at": factories.now()}, {}],
        "another kind": [{"kind": ConsentKind.DATA_PROCESSING}],
    }
    patients = {}
    for name, consents in given.items():
        patients[name] = factories.patient(db_session, t.cpts)
        for fields in consents:
            factories.consent(db_session, patients[name], recorded_by=t.coordinator, **fields)
    db_session.commit()
    in_force = consent_in_force(Patient.id, ConsentKind.TELEHEALTH)
    ids = [p.id for p in patients.values()]
    in_sql = dict(db_session.execute(select(Patient.id, in_force).where(Patient.id.in_(ids))).all())
    for patient in patients.values():
        db_session.refresh(patient)
    in_python = {p.id: has_valid_consent(p, ConsentKind.TELEHEALTH) for p in patients.values()}
    assert in_sql == in_python
    assert in_python == {p.id: name in ("in force", "given again") for name, p in patients.items()}
