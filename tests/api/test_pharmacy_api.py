"""Issue 11, item 6, through the JSON API: a program of teleconsultations assisted in an officine is created and
booked, its pharmacist runs the session, and their TLM follows the rule of DESIGN.md: nothing before the 5th
assistance of the (Paris) calendar year, 25 € per block of 5, at most 750 € a year."""

import datetime as dt

import pytest
import time_machine

from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.api.test_scheduling_api import CHECK_IN, CHECKLIST, PROGRAM
from tests.factories import PARIS

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def officine(db_session, territory):
    organisation, pharmacist = factories.officine(db_session, territory.cpts, email="pharma@example.org")
    db_session.commit()
    return organisation, pharmacist


def officine_program(territory, organisation, **overrides) -> dict:
    return (
        PROGRAM
        | {
            "name": f"Téléconsultation en officine – {organisation.name}",
            "kind": "pharmacy_teleconsultation",
            "performer_id": territory.cardiologist.id,
            "organisation_id": organisation.id,
            "slot_interval_minutes": 60,
        }
        | overrides
    )


def assistance(client, pharmacist, **query) -> dict:
    response = client.get(f"/api/v1/professionals/{pharmacist.professional_id}/pharmacy-assistance", query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_an_officine_program_is_booked_and_its_pharmacist_runs_the_session(
    api_as, db_session, territory, officine, clock
):
    t, (organisation, pharmacist) = territory, officine
    coordination = api_as(t.coordinator)
    created = coordination.post("/api/v1/programs", json=officine_program(t, organisation))
    assert created.status_code == 201, created.get_json()
    assert (created.get_json()["kind"], created.get_json()["organisation_id"]) == (
        "pharmacy_teleconsultation",
        organisation.id,
    )
    slots = coordination.get(f"{created.headers['Location']}/slots?from=2026-11-23&to=2026-11-23").get_json()["items"]
    booking = {"slot_id": slots[0]["id"], "patient_id": t.patient.id, "place_kind": "lieu_dedie"}
    body = assert_problem(coordination.post("/api/v1/appointments", json=booking), 422)
    assert "Officine" in body["errors"]["place_kind"]
    booked = coordination.post("/api/v1/appointments", json=booking | {"place_kind": "officine"})
    assert booked.status_code == 201, booked.get_json()
    appointment = booked.get_json()
    assert appointment["accompanying_id"] == pharmacist.professional_id, "the officine's pharmacist, not the IDEL"
    assert {"role": "accompanying", "actor": {"type": "Practitioner", "id": pharmacist.professional_id}} == {
        key: value for key, value in appointment["participants"][2].items() if key != "status"
    }

    before = assistance(api_as(pharmacist), pharmacist)
    assert (before["sessions_upcoming"], before["upcoming"][0]["appointment_id"]) == (1, appointment["id"])
    assert before["upcoming"][0]["prescriber_name"] == t.cardiologist.full_name
    client = api_as(pharmacist)
    url = f"/api/v1/appointments/{appointment['id']}"
    for verb, body in (("confirm", None), ("checklist", CHECKLIST), ("check-in", CHECK_IN)):
        response = client.post(f"{url}/{verb}", json=body)
        assert response.status_code == 200, (verb, response.get_json())
    clock.move_to(dt.datetime.fromisoformat(appointment["ends_at"]))
    assert client.post(f"{url}/complete").status_code == 200
    after = assistance(client, pharmacist)
    assert after | {"upcoming": [], "recently_done": []} == {
        "professional_id": pharmacist.professional_id,
        "year": 2026,
        "code": "TLM",
        "assistances": 1,
        "paid_amount": "0.00",
        "block_size": 5,
        "block_amount": "25.00",
        "yearly_cap": "750.00",
        "cap_reached": False,
        "until_next_block": 4,
        "sessions_done": 1,
        "sessions_upcoming": 0,
        "upcoming": [],
        "recently_done": [],
    }
    done = after["recently_done"][0]
    assert (done["appointment_id"], done["prescriber_rpps"], done["state"]) == (
        appointment["id"],
        t.cardiologist.rpps,
        "done",
    )
    fee = client.get("/api/v1/fees?code=TLM").get_json()["items"][0]
    assert (fee["amount"], fee["prescriber_rpps"], fee["prescriber_name"]) == (
        "0.00",
        t.cardiologist.rpps,
        t.cardiologist.full_name,
    )


def test_an_officine_program_needs_an_officine(api_as, db_session, territory, officine):
    t = territory
    msp = factories.organisation(db_session, t.cpts, name="MSP Vergt", kind="msp")
    db_session.commit()
    client = api_as(t.coordinator)
    for organisation_id in (None, msp.id):
        data = officine_program(t, officine[0], organisation_id=organisation_id)
        body = assert_problem(client.post("/api/v1/programs", json=data), 422)
        assert "officine" in body["errors"]["organisation_id"]
    data = officine_program(t, officine[0], slot_interval_minutes=None)
    body = assert_problem(client.post("/api/v1/programs", json=data), 422)
    assert "pharmacien de l'officine serait réservé deux fois" in body["errors"]["slot_interval_minutes"]


@pytest.mark.parametrize(
    ("done", "paid", "until_next_block", "cap_reached"),
    [(4, "0.00", 1, False), (5, "25.00", 5, False), (150, "750.00", None, True), (155, "750.00", None, True)],
)
def test_tlm_nothing_before_the_5th_then_25_euros_a_block_up_to_750_a_year(
    api_as, db_session, territory, officine, done, paid, until_next_block, cap_reached
):
    t, (organisation, pharmacist) = territory, officine
    program = factories.program(db_session, t.cpts, performer=t.cardiologist, at_officine=organisation)
    first = dt.datetime(2026, 1, 5, 9, 30, tzinfo=PARIS)
    for n in range(done):
        factories.assistance_done(db_session, program, pharmacist, t.patient, first + dt.timedelta(days=n))
    db_session.commit()
    body = assistance(api_as(pharmacist), pharmacist, year=2026)
    assert (body["assistances"], body["paid_amount"], body["until_next_block"], body["cap_reached"]) == (
        done,
        paid,
        until_next_block,
        cap_reached,
    )
    assert body["sessions_done"] == done and len(body["recently_done"]) == min(done, 10)
    amounts = [
        item["amount"] for item in api_as(pharmacist).get("/api/v1/fees?code=TLM&per_page=200").get_json()["items"]
    ]
    assert sum(float(amount) for amount in amounts) == float(paid)
    assert amounts.count("25.00") == min(done // 5, 30)


def test_the_year_is_the_paris_calendar_year(api_as, db_session, territory, officine):
    """An assistance at 23:30 on 31 December in Paris is the year's; at 00:30 on 1 January, the next year's, though
    it is still 31 December in UTC."""
    t, (organisation, pharmacist) = territory, officine
    program = factories.program(db_session, t.cpts, performer=t.cardiologist, at_officine=organisation)
    for n in range(4):
        factories.assistance_done(
            db_session, program, pharmacist, t.patient, dt.datetime(2026, 12, 1 + n, 10, tzinfo=PARIS)
        )
    fifth = dt.datetime(2026, 12, 31, 23, 30, tzinfo=PARIS)
    next_year = dt.datetime(2027, 1, 1, 0, 30, tzinfo=PARIS)
    assert next_year.astimezone(dt.UTC).date() == dt.date(2026, 12, 31)
    for starts_at in (fifth, next_year):
        factories.assistance_done(db_session, program, pharmacist, t.patient, starts_at)
    db_session.commit()
    client = api_as(pharmacist)
    with time_machine.travel(dt.datetime(2027, 1, 10, 9, 0, tzinfo=PARIS), tick=False):
        last_year = assistance(client, pharmacist, year=2026)
        this_year = assistance(client, pharmacist)
    assert (last_year["assistances"], last_year["paid_amount"], last_year["sessions_done"]) == (5, "25.00", 5)
    assert (this_year["year"], this_year["assistances"], this_year["paid_amount"], this_year["sessions_done"]) == (
        2027,
        1,
        "0.00",
        1,
    )
    assert_problem(client.get(f"/api/v1/professionals/{pharmacist.professional_id}/pharmacy-assistance?year=2027"), 422)


def test_the_pharmacy_assistance_is_the_pharmacists_and_their_coordinations(api_as, db_session, territory, officine):
    t, (_organisation, pharmacist) = territory, officine
    _elsewhere, other = factories.officine(db_session, t.cpts)
    db_session.commit()
    url = f"/api/v1/professionals/{pharmacist.professional_id}/pharmacy-assistance"
    assert api_as(t.coordinator).get(url).status_code == 200
    assert_problem(api_as(other).get(url), 404)
    assert_problem(api_as(t.idel_user).get(f"/api/v1/professionals/{t.idel.id}/pharmacy-assistance"), 404)
