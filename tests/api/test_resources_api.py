"""Issue 11, item 2: kits, rooms and dedicated teleconsultation places through the JSON API. Created, read,
edited and retired by the coordination or the admin of the CPTS (another CPTS's are not found); each lists its
programs and its bookings; a resource that still serves is not retired; a retired one is refused to programs; an
appointment names the kit and the place it holds."""

import datetime as dt
import json

import pytest
from sqlalchemy import select

from hub.models import AuditEvent, Profession, Resource, ResourceKind, Role
from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.api.test_scheduling_api import PROGRAM, booking
from tests.factories import MONDAY_14H

pytestmark = pytest.mark.usefixtures("clock")

KIT = {"kind": "kit", "name": "Mallette ECG connectée n° 1", "description": "ECG 12 dérivations"}


@pytest.fixture
def api(api_as, territory):
    return api_as(territory.coordinator)


@pytest.fixture
def equipped(db_session, territory):
    """The territory's Monday program with its connected ECG case and its dedicated place, an hour apart."""
    kit = factories.resource(db_session, territory.cpts, name="Mallette ECG connectée n° 1")
    place = factories.resource(
        db_session, territory.cpts, ResourceKind.DEDICATED_PLACE, name="Cabine de téléconsultation de la MSP"
    )
    program = territory.program
    program.kit_id, program.room_id, program.slot_interval_minutes = kit.id, place.id, 60
    db_session.commit()
    return kit, place


def monday_slot(db_session, territory, minutes: int = 0):
    return factories.slot(
        db_session, territory.program, (MONDAY_14H + dt.timedelta(minutes=minutes)).astimezone(dt.UTC)
    )


def test_the_coordination_creates_reads_and_lists_a_kit(api, db_session, territory):
    organisation = factories.organisation(db_session, territory.cpts)
    db_session.commit()
    response = api.post("/api/v1/resources", json=KIT | {"organisation_id": organisation.id})
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/resources/{created['id']}")
    assert created == {
        "id": created["id"],
        "kind": "kit",
        "kind_label": "Matériel (mallette connectée…)",
        "name": "Mallette ECG connectée n° 1",
        "organisation_id": organisation.id,
        "address": None,
        "description": "ECG 12 dérivations",
        "is_active": True,
        "retired_at": None,
        "programs": [],
        "upcoming_bookings": 0,
    }
    assert api.get(response.headers["Location"]).get_json() == created
    listed = api.get("/api/v1/resources").get_json()
    assert (listed["total"], listed["items"]) == (1, [created])
    event = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "resource.create")).one()
    assert (event.target_id, event.actor_user_id) == (str(created["id"]), territory.coordinator.id)


def test_a_dedicated_place_is_a_place_a_program_may_use(api, db_session, territory):
    place = api.post("/api/v1/resources", json={"kind": "dedicated_place", "name": "Cabine de la MSP"}).get_json()
    assert place["kind_label"] == "Lieu dédié à la téléconsultation"
    created = api.post(
        "/api/v1/programs",
        json=PROGRAM | {"performer_id": territory.cardiologist.id, "room_id": place["id"], "slot_interval_minutes": 60},
    )
    assert created.status_code == 201, created.get_json()
    assert (created.get_json()["room_id"], created.get_json()["room_name"]) == (place["id"], "Cabine de la MSP")
    programs = api.get(f"/api/v1/resources/{place['id']}").get_json()["programs"]
    assert programs == [{"id": created.get_json()["id"], "name": PROGRAM["name"], "is_active": True}]


def test_bad_input_is_refused_field_by_field(api, db_session, territory):
    foreign = factories.organisation(db_session, factories.cpts(db_session))
    db_session.commit()
    body = assert_problem(api.post("/api/v1/resources", json={"kind": "box", "name": "X"}), 422)
    assert set(body["errors"]) == {"kind", "name"}
    for organisation_id in (foreign.id, 0):
        body = assert_problem(api.post("/api/v1/resources", json=KIT | {"organisation_id": organisation_id}), 422)
        assert body["errors"] == {"organisation_id": "Structure inconnue dans la CPTS."}
    assert db_session.scalars(select(Resource)).all() == []


def test_editing_keeps_the_kind_and_is_audited(api, db_session, equipped):
    kit, _place = equipped
    url = f"/api/v1/resources/{kit.id}"
    changed = api.patch(url, json={"name": "Mallette ECG n° 1 (CH)", "address": "Cardiologie, 2e étage"})
    assert changed.status_code == 200, changed.get_json()
    assert (changed.get_json()["name"], changed.get_json()["address"]) == (
        "Mallette ECG n° 1 (CH)",
        "Cardiologie, 2e étage",
    )
    assert assert_problem(api.patch(url, json={"kind": "room"}), 422)["errors"] == {
        "kind": "Champ inconnu ou non modifiable."
    }
    assert assert_problem(api.patch(url, json={}), 422)["errors"] == {"_schema": "Aucun champ à modifier."}
    event = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "resource.update")).one()
    assert json.loads(event.details) == {"fields": ["address", "name"]}


def test_a_kit_still_serving_is_not_retired_and_the_refusal_names_what_serves(api, db_session, territory, equipped):
    kit, _place = equipped
    api.post("/api/v1/appointments", json=booking(territory, monday_slot(db_session, territory)))
    shown = api.get(f"/api/v1/resources/{kit.id}").get_json()
    assert shown["upcoming_bookings"] == 1
    body = assert_problem(api.post(f"/api/v1/resources/{kit.id}/retire", json={}), 422)
    assert body["programs"] == [{"id": territory.program.id, "name": territory.program.name}]
    assert body["upcoming_bookings"] == 1
    assert body["detail"].startswith(
        f"« Mallette ECG connectée n° 1 » ne peut pas être retiré(e) : le programme « {territory.program.name} »"
    )
    assert api.get(f"/api/v1/resources/{kit.id}").get_json()["is_active"] is True


def test_a_kit_nothing_counts_on_is_retired_once_and_keeps_its_bookings(api, db_session, clock, territory, equipped):
    kit, _place = equipped
    held = api.post("/api/v1/appointments", json=booking(territory, monday_slot(db_session, territory))).get_json()
    clock.move_to(MONDAY_14H + dt.timedelta(days=1))
    api.patch(f"/api/v1/programs/{territory.program.id}", json={"kit_id": None})
    retired = api.post(f"/api/v1/resources/{kit.id}/retire", json={})
    assert retired.status_code == 200, retired.get_json()
    assert retired.get_json()["is_active"] is False
    assert retired.get_json()["retired_at"] == "2026-11-24T13:00:00+00:00"
    assert_problem(api.post(f"/api/v1/resources/{kit.id}/retire", json={}), 409)
    history = api.get(f"/api/v1/resources/{kit.id}/bookings?from=2026-11-01").get_json()
    assert [b["appointment_id"] for b in history["items"]] == [held["id"]]
    assert api.get(f"/api/v1/resources/{kit.id}/bookings").get_json()["total"] == 0  # nothing upcoming
    assert db_session.scalars(select(AuditEvent).where(AuditEvent.action == "resource.retire")).one()


def test_a_program_refuses_a_retired_a_foreign_or_a_misplaced_resource(api, db_session, territory, equipped):
    kit, _place = equipped
    kit.is_active, kit.retired_at = False, factories.now()
    foreign = factories.resource(db_session, factories.cpts(db_session))
    db_session.commit()
    program = PROGRAM | {"performer_id": territory.cardiologist.id, "slot_interval_minutes": 60}
    body = assert_problem(api.post("/api/v1/programs", json=program | {"kit_id": kit.id}), 422)
    assert body["errors"] == {
        "kit_id": "« Mallette ECG connectée n° 1 » est retiré : choisissez un matériel en service."
    }
    for kit_id in (foreign.id, 0):
        body = assert_problem(api.post("/api/v1/programs", json=program | {"kit_id": kit_id}), 422)
        assert body["errors"] == {"kit_id": "Matériel inconnu dans la CPTS."}
    body = assert_problem(api.patch(f"/api/v1/programs/{territory.program.id}", json={"room_id": kit.id}), 422)
    assert body["errors"] == {"room_id": "Choisissez une salle ou un lieu dédié, pas du matériel."}


def test_the_bookings_of_a_kit_are_its_appointments_over_their_whole_window(api, db_session, territory, equipped):
    kit, _place = equipped
    first = api.post("/api/v1/appointments", json=booking(territory, monday_slot(db_session, territory))).get_json()
    other = factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator)
    second = api.post(
        "/api/v1/appointments", json=booking(territory, monday_slot(db_session, territory, 60), patient_id=other.id)
    ).get_json()
    page = api.get(f"/api/v1/resources/{kit.id}/bookings?per_page=1").get_json()
    assert (page["total"], len(page["items"])) == (2, 1)
    assert page["items"][0] == {
        "appointment_id": first["id"],
        "kind": "assisted_teleconsultation",
        "state": "proposed",
        "state_label": "Proposé",
        "program_id": territory.program.id,
        "program_name": territory.program.name,
        "performer_id": territory.cardiologist.id,
        "performer_name": territory.cardiologist.full_name,
        "held_from": "2026-11-23T12:40:00+00:00",
        "held_until": "2026-11-23T13:40:00+00:00",
        "appointment_starts_at": "2026-11-23T13:00:00+00:00",
        "appointment_ends_at": "2026-11-23T13:15:00+00:00",
    }
    later = api.get(f"/api/v1/resources/{kit.id}/bookings?from=2026-11-23T13:45:00%2B00:00").get_json()
    assert [b["appointment_id"] for b in later["items"]] == [second["id"]]
    assert_problem(api.get(f"/api/v1/resources/{kit.id}/bookings?from=2026-11-24&to=2026-11-23"), 422)


def test_an_appointment_names_the_kit_and_the_place_it_holds(api, db_session, territory, equipped):
    kit, place = equipped
    created = api.post("/api/v1/appointments", json=booking(territory, monday_slot(db_session, territory))).get_json()
    shown = api.get(f"/api/v1/appointments/{created['id']}").get_json()
    assert (shown["kit_id"], shown["kit_name"]) == (kit.id, "Mallette ECG connectée n° 1")
    assert (shown["room_id"], shown["room_name"]) == (place.id, "Cabine de téléconsultation de la MSP")
    program = api.get(f"/api/v1/programs/{territory.program.id}").get_json()
    assert (program["kit_name"], program["room_name"]) == ("Mallette ECG connectée n° 1", place.name)


def test_the_admin_manages_them_the_idel_does_not_and_another_cpts_sees_none(api_as, db_session, cpts, equipped):
    kit, _place = equipped
    admin = api_as(factories.user(db_session, cpts, Role.ADMIN))
    assert admin.patch(f"/api/v1/resources/{kit.id}", json={"description": "Révisée en 2026"}).status_code == 200
    idel = api_as(factories.clinician(db_session, cpts, Profession.NURSE))
    assert_problem(idel.get("/api/v1/resources"), 403)
    stranger = api_as(factories.coordinator(db_session, factories.cpts(db_session)))
    for response in (
        stranger.get(f"/api/v1/resources/{kit.id}"),
        stranger.patch(f"/api/v1/resources/{kit.id}", json={"name": "Volée"}),
        stranger.post(f"/api/v1/resources/{kit.id}/retire", json={}),
        stranger.get(f"/api/v1/resources/{kit.id}/bookings"),
    ):
        assert_problem(response, 404)
    assert stranger.get("/api/v1/resources").get_json()["total"] == 0
    db_session.refresh(kit)
    assert (kit.name, kit.is_active) == ("Mallette ECG connectée n° 1", True)
