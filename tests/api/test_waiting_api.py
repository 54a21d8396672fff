"""The waiting list and the freed slots through the JSON API: the coordination adds, lists, withdraws, sees the
freed slots with their matches and offers one in one call; a refused booking changes nothing; another CPTS's
coordinator finds nothing (404, audited)."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from hub.models import (
    Appointment,
    AuditEvent,
    FreedSlotTask,
    PlaceKind,
    ReferralState,
    Role,
    WaitingEntry,
    WaitingState,
)
from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.factories import MONDAY_14H, NOW
from workflows import appointments

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def api(api_as, territory):
    return api_as(territory.coordinator)


def waiter(db_session, t, **fields):
    return factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator, **fields)


def cancelled_slot(db_session, t):
    """Next Monday 14:00, booked for the territory's patient, then cancelled."""
    slot = factories.slot(db_session, t.program, MONDAY_14H.astimezone(dt.UTC))
    appointment = appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
    )
    appointments.cancel(db_session, t.coordinator, appointment, reason="Hospitalisé", now=NOW)
    db_session.commit()
    return slot


def test_add_list_read_and_withdraw(api, db_session, territory):
    t = territory
    patient = waiter(db_session, t)
    db_session.commit()
    body = {
        "patient_id": patient.id,
        "program_id": t.program.id,
        "urgency": "urgent",
        "weekdays": [0, 2],
        "needs": ["mobilite_reduite"],
        "note": "Joignable le matin",
    }
    response = api.post("/api/v1/waiting-list", json=body)
    assert response.status_code == 201, response.get_json()
    entry = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/waiting-list/{entry['id']}")
    assert (entry["urgency_label"], entry["weekdays"], entry["needs"], entry["state"]) == (
        "Urgent",
        [0, 2],
        ["mobilite_reduite"],
        "waiting",
    )
    assert_problem(api.post("/api/v1/waiting-list", json=body), 409)
    listed = api.get(f"/api/v1/waiting-list?program_id={t.program.id}").get_json()
    assert [item["patient_id"] for item in listed["items"]] == [patient.id]
    assert api.get(f"/api/v1/waiting-list/{entry['id']}").get_json()["patient_name"] == patient.display_name
    refused = assert_problem(api.post(f"/api/v1/waiting-list/{entry['id']}/withdraw", json={}), 422)
    assert "reason" in refused["errors"]
    withdrawn = api.post(f"/api/v1/waiting-list/{entry['id']}/withdraw", json={"reason": "Soigné ailleurs"})
    assert withdrawn.get_json()["state"] == "withdrawn"
    assert api.get("/api/v1/waiting-list").get_json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"urgency": "demain"}, "urgency"),
        ({"weekdays": [9]}, "weekdays"),
        ({"needs": ["inconnu"]}, "needs"),
        ({"urgency": None}, "urgency"),
        ({"colour": "bleu"}, "colour"),
    ],
)
def test_bad_input_is_a_problem_and_saves_nothing(api, db_session, territory, body, field):
    base = {"patient_id": territory.patient.id, "program_id": territory.program.id, "urgency": "urgent"}
    refused = assert_problem(api.post("/api/v1/waiting-list", json={**base, **body}), 422)
    assert any(key.split(".")[0] == field for key in refused["errors"]), refused["errors"]
    assert db_session.scalar(select(func.count(WaitingEntry.id))) == 0


def test_an_accepted_referral_waits_from_its_id(api, db_session, territory, gp):
    referral = factories.referral(
        db_session, territory.patient, author=gp, state=ReferralState.ACCEPTED, target_program_id=territory.program.id
    )
    db_session.commit()
    response = api.post("/api/v1/waiting-list", json={"referral_id": referral.id, "weekdays": [0]})
    assert response.status_code == 201, response.get_json()
    assert (response.get_json()["referral_id"], response.get_json()["urgency"]) == (referral.id, "des_que_possible")


def test_a_freed_slot_is_listed_with_its_matches_and_offered_in_one_call(api, db_session, territory):
    t = territory
    patient = waiter(db_session, t)
    db_session.commit()
    entry_id = api.post(
        "/api/v1/waiting-list", json={"patient_id": patient.id, "program_id": t.program.id, "urgency": "urgent"}
    ).get_json()["id"]
    slot = cancelled_slot(db_session, t)
    [freed] = api.get("/api/v1/freed-slots").get_json()["items"]
    assert (freed["slot_id"], freed["reason_label"]) == (slot.id, "Rendez-vous annulé")
    assert [(m["entry_id"], m["fits"]) for m in freed["matches"]] == [(entry_id, True)]
    offered = api.post(f"/api/v1/freed-slots/{freed['id']}/offer", json={"entry_id": entry_id})
    assert offered.status_code == 200, offered.get_json()
    answer = offered.get_json()
    assert answer["entry"]["state"] == "booked"
    appointment = db_session.get(Appointment, answer["appointment_id"])
    assert (appointment.patient_id, appointment.slot_id) == (patient.id, slot.id)
    assert api.get("/api/v1/freed-slots").get_json()["items"] == []
    again = assert_problem(api.post(f"/api/v1/freed-slots/{freed['id']}/offer", json={"entry_id": entry_id}), 409)
    assert "plus en liste d'attente" in again["detail"]


def test_a_booking_the_rules_refuse_is_said_in_french_and_changes_nothing(api, db_session, territory):
    """The waiting patient has no télésoin eligibility checklist: book() refuses, the task and the entry stay."""
    t = territory
    patient = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator, eligible=False)
    db_session.commit()
    entry_id = api.post(
        "/api/v1/waiting-list", json={"patient_id": patient.id, "program_id": t.program.id, "urgency": "urgent"}
    ).get_json()["id"]
    cancelled_slot(db_session, t)
    [freed] = api.get("/api/v1/freed-slots").get_json()["items"]
    refused = api.post(f"/api/v1/freed-slots/{freed['id']}/offer", json={"entry_id": entry_id})
    assert refused.mimetype == "application/problem+json" and 400 <= refused.status_code < 500
    assert refused.get_json()["detail"].startswith("Vérifiez d'abord l'éligibilité du patient")
    db_session.expire_all()
    assert db_session.get(FreedSlotTask, freed["id"]).resolved_at is None
    assert db_session.get(WaitingEntry, entry_id).state is WaitingState.WAITING
    assert db_session.scalar(select(func.count(Appointment.id)).where(Appointment.patient_id == patient.id)) == 0


def test_another_cptss_coordinator_finds_nothing_and_is_audited(api_as, db_session, territory):
    t = territory
    patient = waiter(db_session, t)
    other = factories.user(db_session, factories.cpts(db_session), Role.COORDINATOR)
    db_session.commit()
    ours = api_as(t.coordinator)
    entry_id = ours.post(
        "/api/v1/waiting-list", json={"patient_id": patient.id, "program_id": t.program.id, "urgency": "urgent"}
    ).get_json()["id"]
    cancelled_slot(db_session, t)
    task_id = ours.get("/api/v1/freed-slots").get_json()["items"][0]["id"]
    theirs = api_as(other)
    assert theirs.get("/api/v1/waiting-list").get_json()["total"] == 0
    assert theirs.get("/api/v1/freed-slots").get_json()["total"] == 0
    assert_problem(theirs.get(f"/api/v1/waiting-list/{entry_id}"), 404)
    assert_problem(theirs.post(f"/api/v1/waiting-list/{entry_id}/withdraw", json={"reason": "x"}), 404)
    assert_problem(theirs.post(f"/api/v1/freed-slots/{task_id}/offer", json={"entry_id": entry_id}), 404)
    body = {"patient_id": patient.id, "program_id": t.program.id, "urgency": "urgent"}
    assert_problem(theirs.post("/api/v1/waiting-list", json=body), 404)
    denied = db_session.scalars(
        select(AuditEvent.action).where(AuditEvent.outcome != "success", AuditEvent.action.like("waiting.%"))
    ).all()
    assert {"waiting.read", "waiting.withdraw", "waiting.add"} <= set(denied)


def test_the_waiting_time_indicator_in_the_api(api, db_session, territory):
    entry = {"patient_id": territory.patient.id, "program_id": territory.program.id, "urgency": "urgent"}
    assert api.post("/api/v1/waiting-list", json=entry).status_code == 201
    body = api.get(f"/api/v1/indicators?year=2026&month=11&program_id={territory.program.id}").get_json()
    found = {indicator["key"]: indicator for indicator in body["indicators"]}
    assert found["liste_attente"]["rows"][:2] == [
        ["En attente aujourd'hui", 1],
        ["Rendez-vous pris depuis la liste dans la période", 0],
    ]


def test_the_list_is_ordered_and_paged_in_the_database(api, db_session, territory, clock):
    t = territory
    made = []
    for urgency in ("des_que_possible", "sous_15_jours", "urgent", "urgent"):
        patient = waiter(db_session, t)
        db_session.commit()
        body = {"patient_id": patient.id, "program_id": t.program.id, "urgency": urgency}
        made.append(api.post("/api/v1/waiting-list", json=body).get_json()["id"])
        clock.shift(dt.timedelta(hours=1))
    first = api.get("/api/v1/waiting-list?per_page=3").get_json()
    second = api.get("/api/v1/waiting-list?per_page=3&page=2").get_json()
    assert (first["total"], second["total"]) == (4, 4)
    assert [item["id"] for item in first["items"] + second["items"]] == [made[2], made[3], made[1], made[0]]
