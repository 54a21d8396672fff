"""Issue 11, item 1: the program's shape through the JSON API. The VIVEVAL Monday (three patients, one
connected ECG kit, one IDEL per patient) is planned with the interval between slot starts and booked end to
end; an interval that would hold the kit twice is refused with the interval that fits."""

import pytest
from sqlalchemy import func, select

from hub.models import Profession, Resource, ResourceKind, SessionProgram
from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.api.test_scheduling_api import PROGRAM

pytestmark = pytest.mark.usefixtures("clock")


def ecg_kit(db_session, territory) -> Resource:
    kit = Resource(cpts_id=territory.cpts.id, kind=ResourceKind.KIT, name="Mallette ECG connectée n° 1")
    db_session.add(kit)
    db_session.flush()
    return kit


def viveval(territory, kit, **overrides) -> dict:
    return (
        PROGRAM | {"performer_id": territory.cardiologist.id, "kit_id": kit.id, "slot_interval_minutes": 60} | overrides
    )


def test_the_viveval_monday_is_planned_and_its_three_slots_booked(api_as, db_session, territory):
    client = api_as(territory.coordinator)
    created = client.post("/api/v1/programs", json=viveval(territory, ecg_kit(db_session, territory)))
    assert created.status_code == 201, created.get_json()
    program = created.get_json()
    assert program["slot_interval_minutes"] == 60
    week = client.get(f"/api/v1/programs/{program['id']}/slots?from=2026-11-23&to=2026-11-29").get_json()
    assert [s["starts_at"] for s in week["items"]] == [
        "2026-11-23T13:00:00+00:00",
        "2026-11-23T14:00:00+00:00",
        "2026-11-23T15:00:00+00:00",
    ]
    for slot in week["items"]:
        idel = factories.professional(db_session, territory.cpts, Profession.NURSE)
        patient = factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator)
        booked = client.post(
            "/api/v1/appointments",
            json={
                "slot_id": slot["id"],
                "patient_id": patient.id,
                "place_kind": "lieu_dedie",
                "accompanying_id": idel.id,
            },
        )
        assert booked.status_code == 201, booked.get_json()
        assert booked.get_json()["accompanying_id"] == idel.id
    week = client.get(f"/api/v1/programs/{program['id']}/slots?from=2026-11-23&to=2026-11-29").get_json()
    assert "free" not in {s["state"] for s in week["items"]}


def test_an_interval_that_holds_the_kit_twice_is_refused_with_the_one_that_fits(api_as, db_session, territory):
    client = api_as(territory.coordinator)
    kit = ecg_kit(db_session, territory)
    body = assert_problem(client.post("/api/v1/programs", json=viveval(territory, kit, slot_interval_minutes=30)), 422)
    assert "au moins 60 min" in body["errors"]["slot_interval_minutes"], body
    body = assert_problem(
        client.post("/api/v1/programs", json=viveval(territory, kit, slot_interval_minutes=None)), 422
    )
    assert "au moins 60 min" in body["errors"]["slot_interval_minutes"], body
    body = assert_problem(client.post("/api/v1/programs", json=viveval(territory, kit, slot_interval_minutes=10)), 422)
    assert "slot_interval_minutes" in body["errors"]
    assert (
        db_session.scalar(select(func.count()).select_from(SessionProgram).where(SessionProgram.kit_id == kit.id)) == 0
    )


def test_a_series_change_that_holds_the_kit_twice_is_refused(api_as, db_session, territory):
    client = api_as(territory.coordinator)
    url = client.post("/api/v1/programs", json=viveval(territory, ecg_kit(db_session, territory))).headers["Location"]
    body = assert_problem(client.patch(url, json={"slot_interval_minutes": 45}), 422)
    assert "au moins 60 min" in body["errors"]["slot_interval_minutes"]
    assert client.get(url).get_json()["slot_interval_minutes"] == 60


def test_the_openapi_document_shows_the_interval(client):
    document = client.get("/api/v1/openapi.json").get_json()
    body = document["paths"]["/programs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]] if "$ref" in body else body
    interval = schema["properties"]["slot_interval_minutes"]
    assert (interval["minimum"], interval["maximum"]) == (5, 720), interval
