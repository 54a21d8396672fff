"""The 20 % télésoin share through the API: a booking that would pass it is refused (422 problem+json, the
share in the body) unless the coordination gives a reason; the override is audited and listed."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from hub.models import Appointment, AuditEvent, DeclaredActivity, Profession
from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.web.test_booking_eligibility_pages import last_audit_id, nothing_booked
from workflows import fees

pytestmark = pytest.mark.usefixtures("clock")

REASON = "Sortie d'hospitalisation, présentiel impossible"


@pytest.fixture
def kine_near_the_cap(db_session, territory):
    """A kiné whose rolling year holds 238.65 € of télésoin for 1,200 € declared (19.89 %): one more TMK
    session (2.15 €) takes the share to 20.07 %. Returns a free slot of their télésoin program."""
    kine = factories.professional(db_session, territory.cpts, Profession.PHYSIOTHERAPIST, does_telesoin=True)
    program = factories.program(db_session, territory.cpts, telesoin=True, performer=kine, slot_minutes=30)
    for month in range(1, 13):
        year = 2025 if month == 12 else 2026
        db_session.add(DeclaredActivity(professional_id=kine.id, year=year, month=month, amount=Decimal(100)))
    for n, coefficient in enumerate([8] * 13 + [1] * 7):
        day, key = dt.date(2026, 10, 1 + n), f"share:{kine.id}:{n}"
        fees.accrue(db_session, fees.Act(kine, "TMK", day, key, coefficient=Decimal(coefficient), is_remote_care=True))
    slot = factories.slot(db_session, program, dt.datetime(2026, 11, 26, 9, tzinfo=dt.UTC))
    db_session.commit()
    return kine, slot


# A kiné's session (coefficient 1: 2.15 €) for a patient seen in person on 1 October.
KINE_ACT = {
    "telesoin_act": "reeducation_membre_rachis",
    "act_coefficient": "1",
    "last_in_person_contact_on": "2026-10-01",
}


def booking(slot, patient, **extra):
    return {"slot_id": slot.id, "patient_id": patient.id, "place_kind": "domicile", **KINE_ACT, **extra}


def test_past_the_cap_without_a_reason_is_refused_with_the_share(api_as, db_session, territory, kine_near_the_cap):
    _kine, slot = kine_near_the_cap
    audited = last_audit_id(db_session)
    response = api_as(territory.coordinator).post("/api/v1/appointments", json=booking(slot, territory.patient))
    problem = assert_problem(response, 422)
    assert "au-delà du plafond de 20\u00a0%" in problem["detail"] and "dérogation motivée" in problem["detail"]
    assert problem["remote_share"] == "0.2007"
    assert nothing_booked(db_session, territory.patient, audited_after=audited)


def test_a_coordinators_reason_books_audits_and_lists_the_override(api_as, db_session, territory, kine_near_the_cap):
    kine, slot = kine_near_the_cap
    api = api_as(territory.coordinator)
    response = api.post(
        "/api/v1/appointments", json=booking(slot, territory.patient, remote_share_override_reason=REASON)
    )
    assert response.status_code == 201, response.json
    assert response.json["remote_share_override_reason"] == REASON
    appointment = db_session.get(Appointment, response.json["id"])
    assert appointment.remote_share_override_reason == REASON
    line = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "remote_share.override"))
    assert (line.target_type, line.target_id, line.cpts_id) == ("appointments", str(appointment.id), kine.cpts_id)
    assert json.loads(line.details) == {"share": "0.2007", "professional_id": kine.id}  # the reason is no audit data
    listed = api.get("/api/v1/fees/remote-share-overrides")
    assert listed.status_code == 200, listed.json
    assert listed.json["total"] == 1
    row = listed.json["items"][0]
    assert (row["appointment_id"], row["professional_id"], row["share"], row["reason"]) == (
        appointment.id,
        kine.id,
        "0.2007",
        REASON,
    )
    assert row["professional_name"] == kine.full_name and row["overridden_by"] == territory.coordinator.login


def test_the_reason_is_bounded(api_as, territory, kine_near_the_cap):
    _kine, slot = kine_near_the_cap
    body = booking(slot, territory.patient, remote_share_override_reason="x" * 301)
    problem = assert_problem(api_as(territory.coordinator).post("/api/v1/appointments", json=body), 422)
    assert problem["errors"]["remote_share_override_reason"] == "Entre 1 et 300 caractères."


def test_the_openapi_document_shows_the_field(client):
    document = client.get("/api/v1/openapi.json").get_json()
    schema = document["paths"]["/appointments"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    field = document["components"]["schemas"][name]["properties"]["remote_share_override_reason"]
    assert (field["type"], field["maxLength"]) == ("string", 300) and "20" in field["description"]
    assert "get" in document["paths"]["/fees/remote-share-overrides"]
