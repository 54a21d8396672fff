"""« Mes visites », the visits done and the accompanying professionals' desks list their visits as rows
(workflows.visits.VisitLine), not as entities with six relationships loaded (issue 17, P7): a line must say what
its appointment says, and a list is one statement whatever its length, the telehealth consent included."""

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect

from hub.db import _prepare
from hub.models import (
    Appointment,
    AppointmentKind,
    AppointmentState,
    ConsentKind,
    Patient,
    PlaceKind,
    Profession,
    ResourceKind,
    VisitOffer,
    VisitOfferState,
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


# --- the lists' statement: which visits, in which list and order (its shape changed for PostgreSQL's plans) ----


def _expected_lists(db_session, professional_id: int, start: dt.datetime, end: dt.datetime, horizon: dt.datetime):
    """The three lists by their rule, worked out in Python over every appointment and offer."""
    pending = {
        o.appointment_id
        for o in db_session.scalars(select(VisitOffer))
        if o.professional_id == professional_id and o.state is VisitOfferState.PENDING
    }
    offered, today, upcoming = [], [], []
    for a in db_session.scalars(select(Appointment).order_by(Appointment.starts_at, Appointment.id)):
        mine = professional_id in (a.performer_id, a.accompanying_id)
        answers = (
            a.accompanying_id == professional_id
            or a.id in pending
            or (a.kind is AppointmentKind.TELESOIN and a.performer_id == professional_id)
        )
        if a.state is AppointmentState.PROPOSED and answers and a.starts_at >= start:
            offered.append(a.id)
        elif (
            mine and a.state in (AppointmentState.CONFIRMED, AppointmentState.CHECKED_IN) and start <= a.starts_at < end
        ):
            today.append(a.id)
        elif mine and a.state is AppointmentState.CONFIRMED and end <= a.starts_at < horizon:
            upcoming.append(a.id)
    return offered, today, upcoming


def test_the_lists_hold_the_professionals_visits_in_time_order_and_nobody_elses(db_session, territory):
    """Offered (as the accompanying IDEL, by a pending offer, as a télésoin's performer), today's and the coming
    ones, apart from other people's visits, declined offers, past offers, visits beyond the horizon and done ones."""
    t = territory
    _, kine = _variety(db_session, t)
    other_idel = factories.professional(db_session, t.cpts, Profession.NURSE)
    bare = {"patient_row": t.patient, "performer": t.cardiologist, "created_by": t.coordinator}
    at = factories.NOW
    offered_to_me = factories.appointment(
        db_session,
        **bare,
        accompanying=other_idel,
        starts_at=at + dt.timedelta(hours=5),
        state=AppointmentState.PROPOSED,
    )
    declined = factories.appointment(
        db_session,
        **bare,
        accompanying=other_idel,
        starts_at=at + dt.timedelta(hours=6),
        state=AppointmentState.PROPOSED,
    )
    for appointment, state in ((offered_to_me, VisitOfferState.PENDING), (declined, VisitOfferState.DECLINED)):
        db_session.add(VisitOffer(appointment_id=appointment.id, professional_id=t.idel.id, state=state))
    others = [
        factories.appointment(db_session, **bare, accompanying=other_idel, starts_at=at + dt.timedelta(hours=h))
        for h in (1, 30)
    ]
    past_offer = factories.appointment(
        db_session, **bare, accompanying=t.idel, starts_at=at - dt.timedelta(days=2), state=AppointmentState.PROPOSED
    )
    far = factories.appointment(db_session, **bare, accompanying=t.idel, starts_at=at + dt.timedelta(days=20))
    tonight = factories.appointment(db_session, **bare, accompanying=t.idel, starts_at=at + dt.timedelta(hours=4))
    db_session.commit()
    start = at.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + dt.timedelta(days=1)
    for professional in (t.idel, kine, other_idel, t.cardiologist):
        found = visits.visit_lists(db_session, professional.id, start, end)
        got = ([v.id for v in found.offered], [v.id for v in found.today], [v.id for v in found.upcoming])
        assert got == _expected_lists(db_session, professional.id, start, end, end + dt.timedelta(days=14))
    idel = visits.visit_lists(db_session, t.idel.id, start, end)
    listed = {v.id for v in idel.offered + idel.today + idel.upcoming}
    assert offered_to_me.id in {v.id for v in idel.offered} and tonight.id in {v.id for v in idel.today}
    assert not listed & {declined.id, past_offer.id, far.id, *(a.id for a in others)}
    assert idel.offered and idel.today and idel.upcoming


def test_the_lists_states_and_kinds_are_written_into_their_sql():
    """On PostgreSQL only the professional, the day's bounds and the horizon are parameters: a prepared statement's
    generic plan knows which states, kinds and how many rows it reads (else PostgreSQL planned every call anew)."""
    dialect = psycopg_dialect()
    lists, done = (_prepare(s, dialect, None) for s in (visits._lists_statement(), visits._done_statement()))
    assert lists.constants == done.constants == {}
    assert "'proposed'" in lists.sql and "'telehealth'" in lists.sql and "LIMIT 50" in done.sql
