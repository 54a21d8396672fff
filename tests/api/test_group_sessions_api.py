"""Group sessions through the API (item 2): the capacity is set when the program is created, never changed
after; the slot list gives each slot's capacity, seats left and participants."""

import pytest

from tests.api.test_patients_api import assert_problem
from tests.api.test_scheduling_api import PROGRAM
from tests.web.test_group_session_pages import book_session_of_four

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def session_of_four(db_session, territory):
    return book_session_of_four(db_session, territory)


def test_the_api_sets_the_capacity_once_and_lists_the_seats(api_as, db_session, territory, session_of_four):
    slot, patients = session_of_four
    client = api_as(territory.coordinator)
    created = client.post("/api/v1/programs", json=PROGRAM | {"performer_id": territory.cardiologist.id})
    assert created.get_json()["capacity"] == 1
    too_many = {"performer_id": territory.cardiologist.id, "capacity": 21}
    assert "capacity" in assert_problem(client.post("/api/v1/programs", json=PROGRAM | too_many), 422)["errors"]
    patch = client.patch(f"/api/v1/programs/{slot.program_id}", json={"capacity": 3})
    assert "capacity" in assert_problem(patch, 422)["errors"]
    url = f"/api/v1/programs/{slot.program_id}/slots?from=2026-11-23&to=2026-11-23"
    [item] = client.get(url).get_json()["items"]
    assert (item["state"], item["capacity"], item["seats_left"]) == ("free", 6, 2)
    assert [p["patient_id"] for p in item["participants"]] == [p.id for p in patients]
