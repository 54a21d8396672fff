"""« Réserver une série » (item 5): the coordinator sees every occurrence with its conflicts before anything is
saved, then books the free ones, or all of them or nothing."""

import re

import pytest
from sqlalchemy import func, select

from hub.models import Appointment, PlaceKind
from scheduling.slots import generate_slots
from tests import factories
from tests.api.test_series_bookings_api import EVERY_OTHER, FIRST, slot_at
from tests.factories import NOW
from tests.web.test_planning_pages import field_error, text
from workflows import appointments

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def series_page(auth, db_session, territory):
    generate_slots(db_session, territory.program, now=NOW)
    other = factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator)
    appointments.book(
        db_session,
        territory.coordinator,
        slot=slot_at(db_session, territory.program, EVERY_OTHER[4]),
        patient=other,
        place_kind=PlaceKind.DEDICATED_PLACE,
        accompanying=territory.other_idel,
    )
    db_session.commit()
    auth.login(territory.coordinator)
    return f"/planning/slots/{slot_at(db_session, territory.program, FIRST).id}/series"


def booked(session, patient) -> int:
    return session.scalar(select(func.count()).select_from(Appointment).where(Appointment.patient_id == patient.id))


def form(territory, **extra) -> dict:
    values = {"patient_id": territory.patient.id, "every": 2, "count": 6, "place_kind": "lieu_dedie"}
    return values | extra


def test_the_page_is_reached_from_the_booking_page_and_offers_the_rhythm(auth, territory, series_page):
    booking = text(auth.client.get(series_page.replace("/series", "/book")))
    assert f'href="{series_page}"' in booking and "Réserver une série à partir de ce créneau" in booking
    page = text(auth.client.get(f"{series_page}?q={territory.patient.birth_name}"))
    assert territory.patient.display_name in page and "Une séance sur deux" in page


def test_checking_flags_the_fifth_occurrence_and_saves_nothing(auth, db_session, territory, series_page):
    response = auth.post(series_page, form(territory, action="check"))
    assert response.status_code == 200
    page = text(response)
    assert "5 libre(s), 1 en conflit." in page
    [fifth] = [
        item for item in re.findall(r"<li class=\"list-group-item[^>]*>(.*?)</li>", page, re.S) if "18 janvier" in item
    ]
    assert "list-group-item-danger" in page and "conflit" in fifth
    assert f"{territory.cardiologist.full_name} déjà réservé(e)" in fifth
    assert "Réserver les séances libres" in page
    assert booked(db_session, territory.patient) == 0


def test_all_or_nothing_refuses_names_the_conflict_and_saves_nothing(auth, db_session, territory, series_page):
    response = auth.post(series_page, form(territory, action="book", all_or_nothing="y"))
    assert response.status_code == 409
    page = text(response)
    assert "Rien n'a été réservé : lundi 18 janvier 2027, 14 h 00" in page
    assert booked(db_session, territory.patient) == 0


def test_booking_the_free_ones_books_five_and_says_which_was_left_out(auth, db_session, territory, series_page):
    response = auth.post(series_page, form(territory, action="book"))
    assert response.status_code == 302 and response.headers["Location"].endswith("/planning?week=2026-11-23")
    assert booked(db_session, territory.patient) == 5
    followed = text(auth.client.get(response.headers["Location"]))
    assert "5 séances réservées." in followed
    assert "Non réservée — lundi 18 janvier 2027, 14 h 00" in followed


def test_a_series_without_a_count_or_an_end_says_so_beside_the_field(auth, db_session, territory, series_page):
    response = auth.post(series_page, form(territory, action="check", count=""))
    assert response.status_code == 422
    assert field_error(text(response), "count") == "Indiquez soit un nombre de séances, soit une date de fin."
    assert booked(db_session, territory.patient) == 0


def test_a_telesoin_group_series_states_its_act_once_for_each_session(auth, db_session, territory, kine):
    group = factories.program(
        db_session,
        territory.cpts,
        performer=kine.professional,
        telesoin=True,
        capacity=6,
        slot_count=1,
        slot_minutes=60,
    )
    generate_slots(db_session, group, now=NOW)
    db_session.commit()
    auth.login(territory.coordinator)
    url = f"/planning/slots/{slot_at(db_session, group, FIRST).id}/series"
    page = text(auth.client.get(url))
    assert "Acte de télésoin" in page and "Date du dernier soin en présentiel" in page
    act = {"telesoin_act": "reeducation_respiratoire", "last_in_person_contact_on": "2026-10-01"}
    without_act = auth.post(url, form(territory, action="book", every=1, count=3, place_kind="domicile"))
    assert without_act.status_code == 422 and field_error(text(without_act), "telesoin_act")
    assert booked(db_session, territory.patient) == 0
    response = auth.post(url, form(territory, action="book", every=1, count=3, place_kind="domicile") | act)
    assert response.status_code == 302
    sessions = db_session.scalars(select(Appointment).where(Appointment.patient_id == territory.patient.id)).all()
    assert [a.telesoin_act for a in sessions] == ["reeducation_respiratoire"] * 3
