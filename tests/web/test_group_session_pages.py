"""Group sessions on the pages (item 2): the capacity on the program form, the week planner and the performer's
agenda show a group session as one session with « n/6 participants » and its list, the booking form adds a
participant while seats remain (the API's side: tests/api/test_group_sessions_api.py)."""

import datetime as dt

import pytest
from sqlalchemy import select

from hub.models import Appointment, PlaceKind, Role, SessionProgram
from tests import factories
from tests.factories import PROGRAM_FORM
from tests.web.test_planning_pages import field_error, text
from workflows import appointments

pytestmark = pytest.mark.usefixtures("clock")

FIRST = dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC)  # Monday 14:00 in Paris


@pytest.fixture
def session_of_four(db_session, territory):
    return book_session_of_four(db_session, territory)


def book_session_of_four(db_session, territory):
    """A group session of six of the cardiologist, next Monday at 14:00, four patients booked."""
    group = factories.program(
        db_session,
        territory.cpts,
        capacity=6,
        performer=territory.cardiologist,
        name="Réhabilitation respiratoire en groupe",
        slot_count=1,
    )
    slot = factories.slot(db_session, group, FIRST)
    patients = [
        factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator) for _ in range(4)
    ]
    for patient in patients:
        appointments.book(
            db_session, territory.coordinator, slot=slot, patient=patient, place_kind=PlaceKind.DEDICATED_PLACE
        )
    db_session.commit()
    return slot, patients


def test_the_week_shows_a_group_session_with_its_participants_and_a_seat_to_take(auth, territory, session_of_four):
    slot, patients = session_of_four
    auth.login(territory.coordinator)
    page = text(auth.client.get("/planning?week=2026-11-23"))
    assert "4/6 participants" in page
    assert all(p.display_name in page for p in patients)
    assert f'href="/planning/slots/{slot.id}/book">Ajouter un participant' in page
    booking = text(auth.client.get(f"/planning/slots/{slot.id}/book"))
    assert "Séance de groupe : 2 places restantes sur 6." in booking


def test_the_performers_agenda_shows_one_group_session_with_its_list(auth, db_session, territory, session_of_four):
    _slot, patients = session_of_four
    appointments.cancel(
        db_session, territory.coordinator, appointments_of(db_session, patients[3]), reason="Hospitalisé"
    )
    db_session.commit()
    auth.login(factories.user(db_session, territory.cpts, Role.PROFESSIONAL, professional_row=territory.cardiologist))
    page = text(auth.client.get("/agenda?day=2026-11-23"))
    assert page.count("Séance de groupe") == 1 and "3/6 participants" in page
    assert all(p.display_name in page for p in patients) and "(annulé)" in page


def appointments_of(session, patient):
    return session.scalars(select(Appointment).where(Appointment.patient_id == patient.id)).one()


def test_the_program_form_sets_the_capacity_and_refuses_one_out_of_range(auth, db_session, coordinator, territory):
    auth.login(coordinator)
    form = PROGRAM_FORM | {"performer_id": territory.cardiologist.id}
    assert 'name="capacity"' in text(auth.client.get("/planning/programs/new"))
    refused = auth.post("/planning/programs/new", form | {"capacity": "21"})
    assert refused.status_code == 422 and field_error(text(refused), "capacity") == "Entre 1 et 20."
    response = auth.post("/planning/programs/new", form | {"capacity": "6"})
    program = db_session.get(SessionProgram, int(response.headers["Location"].rsplit("/", 1)[1]))
    assert program.capacity == 6
    assert 'Participants par séance</dt><dd class="col-sm-8">6 (séance de groupe)' in text(
        auth.client.get(f"/planning/programs/{program.id}")
    )
