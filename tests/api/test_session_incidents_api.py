"""Incidents of a session through the API: declared by the accompanying IDEL or the performer during or after the
session (technical, EI, EIG), an EIG alerting each coordinator of the CPTS at once by an e-mail without health
data; the coordination lists the CPTS's incidents, the EIG first; nobody else reads or declares them."""

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from connectors.email import render
from hub.models import AppointmentState, AuditEvent, OutboxMessage, Profession, Role, SessionIncident
from tests import factories
from tests.api.test_patients_api import assert_problem

pytestmark = pytest.mark.usefixtures("clock")

LOST = {"kind": "connection_lost", "severity": "moderate", "description": "Vidéo coupée 5 minutes, reprise"}
EIG = {"kind": "serious_adverse_event", "description": "Chute pendant l'exercice, appel du 15"}


def incidents_url(appointment) -> str:
    return f"/api/v1/appointments/{appointment.id}/incidents"


@pytest.fixture
def session_under_way(db_session, territory):
    """Monday's assisted teleconsultation, the patient checked in by their IDEL; the cardiologist has an account."""
    appointment = factories.visit(db_session, territory, state=AppointmentState.CHECKED_IN)
    territory.cardiologist_user = factories.user(
        db_session, territory.cpts, Role.PROFESSIONAL, professional_row=territory.cardiologist
    )
    db_session.commit()
    return appointment


def alerts(db_session) -> list[OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.kind == "serious_adverse_event").order_by(OutboxMessage.id)
    return list(db_session.scalars(query))


def test_the_idel_declares_a_technical_incident_that_the_session_lists(
    api_as, db_session, territory, session_under_way
):
    idel = api_as(territory.idel_user)
    created = idel.post(incidents_url(session_under_way), json=LOST)
    assert created.status_code == 201, created.get_json()
    assert created.headers["Location"].endswith(incidents_url(session_under_way))
    body = created.get_json()
    assert (body["kind_label"], body["is_serious"], body["recorded_by_user_id"]) == (
        "Connexion perdue",
        False,
        territory.idel_user.id,
    )
    assert body["severity_label"].startswith("Modérée") and body["appointment_id"] == session_under_way.id
    line = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "incident.record"))
    assert json.loads(line.details) == {
        "appointment_id": session_under_way.id,
        "kind": "connection_lost",
        "severity": "moderate",
    }
    assert alerts(db_session) == [], "only an EIG alerts the coordination"
    listed = api_as(territory.cardiologist_user).get(incidents_url(session_under_way)).get_json()
    assert listed["total"] == 1 and listed["items"][0]["description"] == LOST["description"]


def test_an_eig_alerts_each_coordinator_at_once_without_health_data(api_as, db_session, territory, session_under_way):
    factories.coordinator(db_session, territory.cpts, email="coord2@example.org")
    factories.coordinator(db_session, factories.cpts(db_session), email="ailleurs@example.org")
    db_session.commit()
    created = api_as(territory.cardiologist_user).post(incidents_url(session_under_way), json=EIG)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert (body["severity"], body["is_serious"]) == ("severe", True), "an EIG is grave by definition"

    messages = alerts(db_session)
    assert [m.recipient for m in messages] == ["coord@example.org", "coord2@example.org"]
    assert {m.cpts_id for m in messages} == {territory.cpts.id}
    for message in messages:
        assert "Chute" not in message.payload and json.loads(message.payload)["incident_id"] == body["id"]
        subject, text = render(message.kind, json.loads(message.payload), base_url="https://hub.cpts.fr")
        assert subject == "Événement indésirable grave déclaré"
        assert "Un événement indésirable grave a été déclaré sur une séance, voir le hub." in text
        assert text.endswith("https://hub.cpts.fr/incidents")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (EIG | {"severity": "moderate"}, "severity", "par définition, de gravité « grave »"),
        (
            {"kind": "adverse_event", "severity": "severe", "description": "Malaise"},
            "kind",
            "se déclare comme « Événement indésirable grave (EIG) »",
        ),
        ({"kind": "equipment_failure", "description": "Tensiomètre HS"}, "severity", "Indiquez la gravité"),
        (LOST | {"description": " "}, "description", "obligatoire"),
        (LOST | {"kind": "fire"}, "kind", "Valeur inconnue"),
        (LOST | {"recorded_at": "2026-11-16T10:00:00+01:00"}, "recorded_at", "Champ inconnu"),
    ],
)
def test_a_contradictory_or_malformed_incident_is_refused(
    api_as, db_session, territory, session_under_way, body, field, message
):
    problem = assert_problem(api_as(territory.idel_user).post(incidents_url(session_under_way), json=body), 422)
    assert message in problem["errors"][field]
    assert db_session.scalar(select(func.count()).select_from(SessionIncident)) == 0
    assert alerts(db_session) == []


def test_an_incident_is_declared_during_or_after_the_session_not_before(api_as, db_session, territory):
    proposed = factories.visit(db_session, territory)
    db_session.commit()
    problem = assert_problem(api_as(territory.idel_user).post(incidents_url(proposed), json=EIG), 422)
    assert problem["detail"] == "Un incident se déclare pendant ou après la séance, une fois le patient accueilli."
    assert alerts(db_session) == []


def test_only_the_sessions_participants_and_the_coordination_reach_its_incidents(
    api_as, db_session, territory, session_under_way
):
    assert api_as(territory.idel_user).post(incidents_url(session_under_way), json=LOST).status_code == 201
    other_idel = api_as(territory.other_idel_user)
    assert_problem(other_idel.get(incidents_url(session_under_way)), 404)
    assert_problem(other_idel.post(incidents_url(session_under_way), json=EIG), 404)
    coordinator = api_as(territory.coordinator)
    assert coordinator.get(incidents_url(session_under_way)).get_json()["total"] == 1
    assert_problem(coordinator.post(incidents_url(session_under_way), json=EIG), 404)  # told by who was there
    assert_problem(api_as(factories.user(db_session, territory.cpts, Role.ADMIN)).get("/api/v1/incidents"), 403)
    assert_problem(other_idel.get("/api/v1/incidents"), 403)
    assert db_session.scalar(select(func.count()).select_from(SessionIncident)) == 1
    assert alerts(db_session) == []


def test_the_coordination_lists_the_cptss_incidents_the_eig_first(
    api_as, db_session, territory, session_under_way, kine, clock
):
    idel = api_as(territory.idel_user)
    assert idel.post(incidents_url(session_under_way), json=EIG).status_code == 201
    clock.shift(dt.timedelta(hours=2))
    assert idel.post(incidents_url(session_under_way), json=LOST).status_code == 201
    done = factories.telesoin_session(db_session, territory, performer=kine.professional, state=AppointmentState.DONE)
    db_session.commit()
    fall = {"kind": "adverse_event", "severity": "minor", "description": "Douleur transitoire"}
    assert api_as(kine).post(incidents_url(done), json=fall).status_code == 201, "after the session too"
    elsewhere = factories.user(db_session, factories.cpts(db_session), Role.COORDINATOR)
    db_session.commit()

    listed = api_as(territory.coordinator).get("/api/v1/incidents").get_json()
    assert [item["kind"] for item in listed["items"]] == ["serious_adverse_event", "adverse_event", "connection_lost"]
    assert listed["total"] == 3 and listed["items"][1]["patient_id"] == territory.patient.id
    assert api_as(elsewhere).get("/api/v1/incidents").get_json() == {"items": [], "page": 1, "per_page": 50, "total": 0}
    paged = api_as(territory.coordinator).get("/api/v1/incidents?per_page=1&page=2").get_json()
    assert [item["kind"] for item in paged["items"]] == ["adverse_event"]


def test_a_kine_who_is_not_a_coordinator_sees_no_cpts_list(api_as, db_session, territory):
    kine = factories.clinician(db_session, territory.cpts, Profession.PHYSIOTHERAPIST)
    db_session.commit()
    assert_problem(api_as(kine).get("/api/v1/incidents"), 403)
