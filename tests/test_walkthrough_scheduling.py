"""The walk-through of the scheduling issue, as a coordinator and two IDELs would do it, through the API and
through the pages: the weekly Monday 14:00 assisted cardiology program, twelve weeks of slots without
Easter Monday (29 March 2027) nor Whit Monday (17 May 2027), a booking, the IDEL's confirmation from
« Mes visites », the confirmed visit in the planner, and a decline back to the coordinator with its reason."""

import datetime as dt
import html
import re
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from hub.models import Appointment, AppointmentState, Profession, SessionProgram, Slot
from hub.services import accounts, calendar_feeds
from tests import factories

PARIS = ZoneInfo("Europe/Paris")
NOW = dt.datetime(2027, 3, 1, 8, 0, tzinfo=PARIS)  # a Monday morning
EASTER_MONDAY, WHIT_MONDAY = dt.date(2027, 3, 29), dt.date(2027, 5, 17)
PROGRAM = {
    "name": "Téléconsultation cardiologie CH Périgueux",
    "kind": "assisted_teleconsultation",
    "first_day": "2027-03-01",
    "time_of_day": "14:00",
    "slot_count": "3",
    "slot_minutes": "15",
    "accompaniment_before_minutes": "20",
    "accompaniment_after_minutes": "25",
}


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def people(db_session, cpts):
    def idel(commune):
        return factories.clinician(
            db_session, cpts, Profession.NURSE, commune_insee=commune, accompanies_teleconsultation=True
        )

    coordinator = factories.coordinator(db_session, cpts)
    cardiologist = factories.professional(
        db_session, cpts, Profession.SPECIALIST, last_name="Lemaitre", first_name="Anne-Iris"
    )
    martin, dupuy = idel("24571"), idel("24037")
    patient = factories.consenting_patient(db_session, cpts, recorded_by=coordinator, birth_name="VIDAL")
    other = factories.consenting_patient(db_session, cpts, recorded_by=coordinator, birth_name="FAURE")
    factories.in_care_team(db_session, patient, martin.professional)
    factories.in_care_team(db_session, other, dupuy.professional)
    db_session.commit()
    return coordinator, cardiologist, martin, dupuy, patient, other


class Api:
    def __init__(self, client, session, user):
        _row, raw = accounts.create_api_token(session, user, name="walk-through")
        session.commit()
        self.client, self.headers = client, {"Authorization": f"Bearer {raw}"}

    def get(self, url):
        response = self.client.get(url, headers=self.headers)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def post(self, url, body=None, *, status=200, **headers):
        response = self.client.post(url, json=body, headers=self.headers | headers)
        assert response.status_code == status, response.get_json()
        return response


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def local(instant: str) -> dt.datetime:
    return dt.datetime.fromisoformat(instant).astimezone(PARIS)


def planner_cell(page: str, slot_id: int) -> str:
    found = re.search(rf'<li class="mb-2 slot slot-\w+" id="creneau-{slot_id}">(.*?)</li>', page, re.S)
    return " ".join(found.group(1).split()) if found else ""


def test_the_walk_through_by_the_api(client, auth, db_session, people):
    coordinator_user, cardiologist, martin, dupuy, patient, other = people
    coordinator = Api(client, db_session, coordinator_user)

    created = coordinator.post(
        "/api/v1/programs",
        PROGRAM
        | {"rrule": "FREQ=WEEKLY;BYDAY=MO", "performer_id": cardiologist.id}
        | {k: int(PROGRAM[k]) for k in ("slot_count", "slot_minutes")}
        | {k: int(PROGRAM[k]) for k in ("accompaniment_before_minutes", "accompaniment_after_minutes")},
        status=201,
    )
    program_url = created.headers["Location"]
    slots = coordinator.get(f"{program_url}/slots?per_page=200")
    mondays = sorted({local(s["starts_at"]).date() for s in slots["items"]})
    assert len(mondays) == 10 and slots["total"] == 30, "12 Mondays, less Easter and Whit Mondays"
    assert EASTER_MONDAY not in mondays and WHIT_MONDAY not in mondays
    assert {local(s["starts_at"]).strftime("%H:%M") for s in slots["items"]} == {"14:00", "14:15", "14:30"}
    assert {s["state"] for s in slots["items"]} == {"free"}
    march_8 = [s for s in slots["items"] if local(s["starts_at"]).date() == dt.date(2027, 3, 8)]

    booked = coordinator.post(
        "/api/v1/appointments",
        {"slot_id": march_8[0]["id"], "patient_id": patient.id, "place_kind": "lieu_dedie"},
        status=201,
        **{"Idempotency-Key": "walk-through-1"},
    ).get_json()
    assert (booked["state"], booked["accompanying_id"]) == ("proposed", martin.professional_id)

    # The patient's IDEL confirms from « Mes visites ».
    auth.login(martin)
    assert patient.display_name in text(auth.client.get("/visits"))
    assert auth.post(f"/visits/{booked['id']}/confirm").status_code == 302
    shown = coordinator.get(f"/api/v1/appointments/{booked['id']}")
    assert shown["state"] == "confirmed"
    assert {p["role"]: p["status"] for p in shown["participants"]}["accompanying"] == "accepted"
    assert coordinator.get(f"{program_url}/slots?from=2027-03-08&to=2027-03-08")["items"][0]["state"] == "confirmed"

    # … and in the IDEL's calendar feed, confirmed, with the patient's initials only.
    _feed, token = calendar_feeds.create_feed(db_session, martin, martin.professional)
    db_session.commit()
    feed = client.get(f"/ical/{token}.ics").get_data(as_text=True).replace("\r\n ", "")
    assert "STATUS:CONFIRMED" in feed and "DTSTART;TZID=Europe/Paris:20270308T134000" in feed
    assert patient.initials in feed and patient.birth_name not in feed

    # The other patient's IDEL declines: back to the coordinator with the reason.
    second = coordinator.post(
        "/api/v1/appointments",
        {"slot_id": march_8[1]["id"], "patient_id": other.id, "place_kind": "lieu_dedie"},
        status=201,
    ).get_json()
    declined = Api(client, db_session, dupuy).post(
        f"/api/v1/appointments/{second['id']}/decline", {"reason": "Tournée complète ce lundi"}
    )
    assert declined.get_json()["state"] == "declined"
    assert coordinator.get(f"/api/v1/appointments/{second['id']}")["declined_reason"] == "Tournée complète ce lundi"

    auth.login(coordinator_user)
    page = text(auth.client.get("/planning?week=2027-03-08"))
    assert "Confirmé" in planner_cell(page, march_8[0]["id"]) and martin.professional.full_name in page
    assert "Refus : Tournée complète ce lundi" in planner_cell(page, march_8[1]["id"])


def test_the_walk_through_in_the_browser(auth, db_session, people):
    coordinator, cardiologist, martin, dupuy, patient, other = people
    auth.login(coordinator)
    created = auth.post(
        "/planning/programs/new",
        PROGRAM | {"rule": "weekly", "weekday": "MO", "performer_id": cardiologist.id, "skip_public_holidays": "true"},
    )
    assert created.status_code == 302
    program = db_session.scalars(select(SessionProgram)).one()

    page = text(auth.client.get(created.headers["Location"]))
    assert "Chaque lundi à 14 h 00, sauf jours fériés" in page
    assert page.count("Annuler cette séance") == 10
    assert "lundi 22 mars 2027, 14 h 00" in page and "lundi 5 avril 2027, 14 h 00" in page, "14:00 across DST"
    assert "29 mars 2027" not in page and "17 mai 2027" not in page

    easter_week = text(auth.client.get("/planning?week=2027-03-29"))
    assert "lundi 29 mars 2027" in easter_week and "creneau-" not in easter_week

    slots = db_session.scalars(
        select(Slot)
        .where(Slot.program_id == program.id, Slot.starts_at < dt.datetime(2027, 3, 9, tzinfo=dt.UTC))
        .where(Slot.starts_at >= dt.datetime(2027, 3, 8, tzinfo=dt.UTC))
        .order_by(Slot.starts_at)
    ).all()
    form = text(auth.client.get(f"/planning/slots/{slots[0].id}/book?q=VIDAL"))
    assert patient.display_name in form and other.display_name not in form
    booked = auth.post(f"/planning/slots/{slots[0].id}/book", {"patient_id": patient.id, "place_kind": "lieu_dedie"})
    assert booked.status_code == 302
    auth.post(f"/planning/slots/{slots[1].id}/book", {"patient_id": other.id, "place_kind": "lieu_dedie"})
    first, second = db_session.scalars(select(Appointment).order_by(Appointment.starts_at)).all()
    assert (first.accompanying_id, second.accompanying_id) == (martin.professional_id, dupuy.professional_id)

    auth.login(martin)
    visits = text(auth.client.get("/visits"))
    assert "Visites à confirmer (1)" in visits and "lundi 8 mars 2027, 14 h 00" in visits
    assert auth.post(f"/visits/{first.id}/confirm").status_code == 302

    auth.login(dupuy)
    assert auth.post(f"/visits/{second.id}/decline", {"reason": "Tournée complète ce lundi"}).status_code == 302

    auth.login(coordinator)
    planner = text(auth.client.get("/planning?week=2027-03-08"))
    assert "Confirmé" in planner_cell(planner, slots[0].id)
    assert martin.professional.full_name in planner_cell(planner, slots[0].id)
    assert "Refusé par l'IDEL" in planner_cell(planner, slots[1].id)
    assert "Refus : Tournée complète ce lundi" in planner_cell(planner, slots[1].id)
    assert "réaffecter l'IDEL" in planner_cell(planner, slots[1].id)
    detail = text(auth.client.get(f"/planning/appointments/{second.id}"))
    assert "Tournée complète ce lundi" in detail and "Réaffecter l'IDEL" in detail
    db_session.expire_all()
    assert db_session.get(Appointment, first.id).state is AppointmentState.CONFIRMED
    assert db_session.get(Appointment, second.id).state is AppointmentState.DECLINED
