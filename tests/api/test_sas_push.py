"""Appointments booked through the SAS (POST /api/v1/appointments with `sas_id`): each status the SAS follows
(booked, fulfilled, noshow, cancelled) queues exactly one outbox message carrying the FHIR Appointment, which the
dispatcher POSTs to a real HTTPS server on loopback once, retrying after a failure and never sending it twice."""

import datetime as dt
import json

import pytest
from sqlalchemy import select

from connectors.dispatcher import dispatch_once
from connectors.registry import build_registry
from hub.models import Appointment, AppointmentState, OutboxMessage, OutboxState, PlaceKind
from hub.services import fhir
from tests import factories
from tests.fhir_validation import validate
from tests.http_servers import Answer, HttpsServer
from workflows import appointments, attendance, sas

pytestmark = pytest.mark.usefixtures("clock")
TOKEN = "jeton-sas-de-la-plateforme"


@pytest.fixture
def sas_server(test_ca):
    with HttpsServer(test_ca, responder=lambda request: Answer(200)) as server:
        yield server


@pytest.fixture
def sas_config(sas_server, test_ca):
    return {
        "SAS_URL": sas_server.url + "/fhir/Appointment",
        "SAS_API_TOKEN": TOKEN,
        "SAS_CA_FILE": str(test_ca.ca_file),
        "SAS_TIMEOUT_SECONDS": 5,
        "CONNECTOR_ALLOW_PRIVATE_HOSTS": 1,  # the test server listens on loopback
    }


def book_through_sas(api_as, territory, slot, sas_id="SAS-2026-0001"):
    response = api_as(territory.coordinator).post(
        "/api/v1/appointments",
        json={"slot_id": slot.id, "patient_id": territory.patient.id, "place_kind": "lieu_dedie", "sas_id": sas_id},
    )
    return response


def sas_messages(db_session, appointment) -> list[OutboxMessage]:
    db_session.expire_all()
    return list(
        db_session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.channel == "sas", OutboxMessage.idempotency_key.like(f"sas:{appointment.id}:%"))
            .order_by(OutboxMessage.id)
        )
    )


def test_each_followed_status_of_a_sas_booking_is_queued_once_and_sent_once(
    db_session, api_as, auth, territory, slot, sas_server, sas_config, sessions
):
    response = book_through_sas(api_as, territory, slot)
    assert response.status_code == 201, response.get_json()
    appointment = db_session.get(Appointment, response.get_json()["id"])
    assert (appointment.source, appointment.external_id) == ("sas", "SAS-2026-0001")
    # The coordination sees on the appointment's page that the SAS took it, and follows it.
    auth.login(territory.coordinator)
    page = auth.client.get(f"/planning/appointments/{appointment.id}").get_data(as_text=True)
    assert "Service d'accès aux soins (SAS, n° SAS-2026-0001)" in page
    assert sas_messages(db_session, appointment) == []  # proposed: the IDEL has not confirmed yet

    # The SAS repeating its booking is refused, and books nothing.
    again = book_through_sas(api_as, territory, factories.slot(db_session, territory.program, slot.ends_at))
    assert again.status_code == 409

    factories.carry_out(db_session, territory.idel_user, appointment)
    db_session.commit()
    booked, fulfilled = sas_messages(db_session, appointment)
    assert [m.kind for m in (booked, fulfilled)] == ["appointment.booked", "appointment.fulfilled"]
    assert [m.idempotency_key for m in (booked, fulfilled)] == [
        f"sas:{appointment.id}:booked",
        f"sas:{appointment.id}:fulfilled",
    ]

    # The SAS fails once: the message waits and is retried; then each is delivered once and never again.
    sas_server.fail_next(1, 503)
    connectors = build_registry(sas_config)
    dispatch_once(sessions, connectors=connectors)
    db_session.expire_all()
    assert db_session.get(OutboxMessage, booked.id).state is OutboxState.PENDING
    later = factories.now() + dt.timedelta(hours=2)
    dispatch_once(sessions, connectors=connectors, now=later)
    dispatch_once(sessions, connectors=connectors, now=later + dt.timedelta(hours=2))
    assert [m.state for m in sas_messages(db_session, appointment)] == [OutboxState.SENT, OutboxState.SENT]
    requests = sas_server.requests
    assert len(requests) == 3
    assert [r.headers["x-idempotency-key"] for r in requests] == [booked.idempotency_key] * 2 + [
        fulfilled.idempotency_key
    ]
    for request in requests:
        assert request.path == "/fhir/Appointment"
        assert request.headers["content-type"] == fhir.MEDIA_TYPE
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
    sent = json.loads(requests[-1].body)
    validate(sent)
    assert sent["status"] == "fulfilled"
    assert sent["identifier"] == [{"system": fhir.SAS_BOOKING_SYSTEM, "value": "SAS-2026-0001"}]


def test_cancellation_and_no_show_are_pushed_and_a_hub_booking_is_not(db_session, api_as, territory, slot):
    cancelled = db_session.get(Appointment, book_through_sas(api_as, territory, slot, "SAS-A").get_json()["id"])
    appointments.cancel(db_session, territory.coordinator, cancelled, reason="Patient hospitalisé", now=factories.now())
    absent_slot = factories.slot(db_session, territory.program, slot.ends_at)
    absent = db_session.get(Appointment, book_through_sas(api_as, territory, absent_slot, "SAS-B").get_json()["id"])
    appointments.confirm(db_session, territory.idel_user, absent, now=factories.now())
    # A status reached again (told by a second transition into it) is not queued twice.
    sas.status_changed(db_session, absent)
    appointments.record_no_show(
        db_session, territory.idel_user, absent, now=absent.starts_at + dt.timedelta(minutes=20)
    )
    in_hub = appointments.book(
        db_session,
        territory.coordinator,
        slot=factories.slot(db_session, territory.program, absent_slot.starts_at + dt.timedelta(days=1)),
        patient=territory.patient,
        place_kind=PlaceKind.DEDICATED_PLACE,
    )
    appointments.cancel(db_session, territory.coordinator, in_hub, reason="Erreur", now=factories.now())
    db_session.commit()

    [cancellation] = sas_messages(db_session, cancelled)
    assert json.loads(cancellation.payload)["status"] == "cancelled"
    assert [m.kind for m in sas_messages(db_session, absent)] == ["appointment.booked", "appointment.noshow"]
    assert sas_messages(db_session, in_hub) == []
    assert in_hub.source == "hub" and in_hub.external_id is None


def test_a_sas_booking_postponed_for_the_performers_absence_is_pushed_as_cancelled(db_session, api_as, territory, slot):
    """Issue 16's attendance with issue 15's SAS: the performer absent postpones the session (workflows.attendance);
    that booking will not take place, so the SAS hears « cancelled », once."""
    appointment = db_session.get(Appointment, book_through_sas(api_as, territory, slot, "SAS-C").get_json()["id"])
    appointments.confirm(db_session, territory.idel_user, appointment, now=factories.now())
    during = appointment.starts_at + dt.timedelta(minutes=5)
    attendance.record(
        db_session, territory.idel_user, appointment, patient=True, accompanying=True, performer=False, now=during
    )
    db_session.commit()
    assert appointment.state is AppointmentState.POSTPONED
    assert [m.kind for m in sas_messages(db_session, appointment)] == ["appointment.booked", "appointment.cancelled"]
    validate(json.loads(sas_messages(db_session, appointment)[-1].payload))


def test_a_bad_sas_id_is_refused_beside_the_field(db_session, api_as, territory, slot):
    response = book_through_sas(api_as, territory, slot, sas_id="pas d'espaces")
    assert response.status_code == 422
    assert "sas_id" in response.get_json()["errors"]
    assert db_session.scalar(select(Appointment.id).where(Appointment.slot_id == slot.id)) is None


def test_a_sas_booking_is_checked_in_without_a_word_to_the_sas(db_session, api_as, territory, slot, monkeypatch):
    """The check-in's single write (hub.http.access.single_write) is committed as it runs: nothing may follow it
    that could fail and answer an error for a check-in already stored. The SAS is not told of it (its status,
    "checked-in", is not one it follows), so nothing of the SAS's is even looked at."""
    booked = book_through_sas(api_as, territory, slot).get_json()["id"]
    idel = api_as(territory.idel_user)
    assert idel.post(f"/api/v1/appointments/{booked}/confirm").status_code == 200
    told = len(sas_messages(db_session, db_session.get(Appointment, booked)))

    def fail(*_args):
        raise AssertionError("the SAS is not told of a check-in")

    monkeypatch.setattr(sas, "status_changed", fail)
    response = idel.post(
        f"/api/v1/appointments/{booked}/check-in",
        json={"identity_method": "document", "patient_location": "Domicile", "callback_phone": "0612345678"},
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "checked_in"
    assert len(sas_messages(db_session, db_session.get(Appointment, booked))) == told
