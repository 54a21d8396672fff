"""SMS reminders through an HTTP provider API on loopback (HTTPS, verified): French text with a date and a
time and nothing about health, the same sentence as the e-mail; numbers in E.164; the provider's answers
sorted into transient and permanent errors; and the day-before reminder job's SMS delivered end to end by
the dispatcher."""

import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import select

from connectors import outbox
from connectors.base import OutgoingMessage, PermanentError, TransientError
from connectors.dispatcher import dispatch_once
from connectors.email import render
from connectors.registry import build_registry
from connectors.reminders import SmsConnector, client_ref, e164
from hub.models import OutboxMessage, OutboxState
from tests.connectors.test_dispatcher import reload
from tests.http_servers import Answer, HttpsServer
from tests.servers import TestCA
from tests.workflows import test_jobs as reminder_job_tests
from tests.workflows.test_jobs import MONDAY_18H, TUESDAY_14H, book
from workflows import jobs

REMINDER = {"appointment_id": 41, "local_date": "2026-12-07", "local_time": "14:00", "recipient_kind": "patient"}
# The reminder job's own fixtures: a CPTS, its IDEL, a patient with a phone, a cardiology program.
world = reminder_job_tests.world
PATIENT_TEXT = (
    "Rappel : vous avez un rendez-vous le lundi 7 décembre 2026 à 14 h 00. "
    "Pour toute question, contactez votre professionnel de santé."
)


def provider_answer(request) -> Answer:
    """A provider's acceptance: its own message id (here derived from the client's reference)."""
    return Answer(200, {"id": f"sms-{request.json['client_ref'][:12]}", "status": "queued"})


@pytest.fixture
def provider(test_ca):
    with HttpsServer(test_ca, responder=provider_answer) as server:
        yield server


@pytest.fixture
def sms_config(provider, test_ca):
    return {
        "SMS_API_URL": provider.url + "/v1/sms",
        "SMS_API_TOKEN": "jeton-de-test",
        "SMS_SENDER": "CPTSVAL",
        "SMS_CA_FILE": str(test_ca.ca_file),
        "SMS_TIMEOUT_SECONDS": 5,
        "BASE_URL": "https://hub.cpts-test.fr",
        "CONNECTOR_ALLOW_PRIVATE_HOSTS": 1,  # the test servers listen on loopback
    }


@pytest.fixture
def connector(sms_config):
    connector = SmsConnector.from_config(sms_config)
    yield connector
    connector.close()


def outgoing(recipient="06 12 34 56 78", payload=None, key="reminder:41:patient:2026-12-06") -> OutgoingMessage:
    return OutgoingMessage(
        id=1,
        idempotency_key=key,
        channel="sms",
        recipient=recipient,
        kind="reminder",
        payload=json.dumps(REMINDER if payload is None else payload),
    )


def test_a_reminder_is_one_sms_with_a_date_and_a_time(connector, provider):
    receipt = connector.send(outgoing())

    [request] = provider.requests
    assert (request.method, request.path) == ("POST", "/v1/sms")
    assert request.headers["authorization"] == "Bearer jeton-de-test"
    assert request.json == {
        "to": "+33612345678",
        "text": PATIENT_TEXT,
        "sender": "CPTSVAL",
        "client_ref": client_ref("reminder:41:patient:2026-12-06"),
    }
    assert receipt.id == f"sms-{client_ref('reminder:41:patient:2026-12-06')[:12]}"
    assert "reminder" not in request.json["client_ref"]  # the key itself does not travel to the provider


def test_the_sms_says_what_the_email_says(connector, provider):
    connector.send(outgoing())
    _, body = render("reminder", REMINDER, base_url="https://hub.cpts-test.fr")
    assert PATIENT_TEXT in " ".join(body.split())
    assert provider.requests[0].json["text"] == PATIENT_TEXT


def test_nothing_about_health_or_identity_is_written(connector, provider):
    leaky = REMINDER | {
        "specialty": "cardiologie",
        "reason": "insuffisance cardiaque",
        "patient": "DUPONT Marie",
        "program": "Téléconsultation cardiologie CH Périgueux",
    }
    connector.send(outgoing(payload=leaky))
    text = provider.requests[0].json["text"]
    assert text == PATIENT_TEXT
    for word in ("cardio", "DUPONT", "Marie", "Périgueux", "http"):  # a patient has no account: no link either
        assert word not in text


def test_a_professional_gets_the_link_behind_login(connector, provider):
    connector.send(outgoing(payload=REMINDER | {"recipient_kind": "idel"}))
    assert provider.requests[0].json["text"] == (
        "Rappel : vous avez un rendez-vous le lundi 7 décembre 2026 à 14 h 00. "
        "Détails sur le hub (après connexion) : https://hub.cpts-test.fr/"
    )


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("0612345678", "+33612345678"),
        ("06 12 34 56 78", "+33612345678"),
        ("07.12.34.56.78", "+33712345678"),
        ("06-12-34-56-78", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+33 (0)6 12 34 56 78", "+33612345678"),
        ("0033612345678", "+33612345678"),
        ("0692 12 34 56", "+262692123456"),  # La Réunion
        ("0690 12 34 56", "+590690123456"),  # Guadeloupe
        ("0696 12 34 56", "+596696123456"),  # Martinique
        ("0694 12 34 56", "+594694123456"),  # Guyane
        ("0639 12 34 56", "+262639123456"),  # Mayotte
        ("+32 470 12 34 56", "+32470123456"),  # already international
    ],
)
def test_numbers_are_sent_in_e164(written, expected):
    assert e164(written) == expected


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("01 23 45 67 89", "fixe"),
        ("+33 5 12 34 56 78", "fixe"),
        ("09 12 34 56 78", "fixe"),
        ("06 12 34 56", "invalide"),
        ("06 12 34 56 78 9", "invalide"),
        ("6 12 34 56 78", "invalide"),
        ("00 0612 34 56 78", "invalide"),
        ("téléphone", "invalide"),
        ("", "invalide"),
        ("+1", "invalide"),
    ],
)
def test_a_number_that_cannot_take_an_sms_is_refused_for_good(connector, provider, written, message):
    with pytest.raises(PermanentError, match=message):
        connector.send(outgoing(recipient=written))
    assert provider.requests == []


# --- answers and transport ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, TransientError),
        (503, TransientError),
        (429, TransientError),
        (401, TransientError),
        (400, PermanentError),
        (422, PermanentError),
    ],
)
def test_provider_answers_are_sorted(connector, provider, status, error):
    provider.queue(Answer(status, {"error": "numéro non joignable"}, headers={"Retry-After": "30"}))
    with pytest.raises(error) as caught:
        connector.send(outgoing())
    assert type(caught.value) is error
    assert str(caught.value).startswith(f"fournisseur SMS : réponse {status} (numéro non joignable)")
    assert "0612345678" not in str(caught.value)


def test_a_provider_with_a_certificate_from_an_unknown_authority_gets_nothing(sms_config, provider, tmp_path):
    connector = SmsConnector.from_config(sms_config | {"SMS_CA_FILE": str(TestCA(tmp_path).ca_file)})
    with pytest.raises(TransientError, match="certificat"):
        connector.send(outgoing())
    connector.close()
    assert provider.requests == []


def test_configuration(sms_config):
    assert SmsConnector.from_config(sms_config | {"SMS_API_URL": None}) is None
    assert SmsConnector.from_config(sms_config | {"SMS_API_TOKEN": None}) is None
    with pytest.raises(ValueError, match="https"):
        SmsConnector.from_config(sms_config | {"SMS_API_URL": "http://sms.example.org/v1/sms"})
    assert build_registry(sms_config)["sms"].sender == "CPTSVAL"


def test_several_sms_share_one_tls_connection(connector, provider):
    for n in range(3):
        connector.send(outgoing(key=f"reminder:{n}:patient:2026-12-06"))
    assert len({request.connection for request in provider.requests}) == 1


# --- end to end -----------------------------------------------------------------------------------------


def test_the_day_before_reminder_job_sms_reaches_the_provider_without_health_data(
    db_session,
    sessions,
    context,
    world,
    sms_config,
    provider,
):
    appointment = book(db_session, world, TUESDAY_14H, confirm=True)
    jobs.send_reminders(context, now=MONDAY_18H)
    db_session.commit()
    [message] = db_session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "sms")).all()

    stats = dispatch_once(sessions, connectors=build_registry(sms_config))

    row = reload(db_session, message)
    assert (row.state, row.attempts) == (OutboxState.SENT, 1)
    assert stats.unconfigured >= 1  # the IDEL's e-mail waits: no SMTP in this test
    [request] = provider.requests
    sms = request.json
    assert row.receipt == f"sms-{client_ref(message.idempotency_key)[:12]}"
    assert sms["to"] == "+33612345678"
    assert sms["text"] == (
        "Rappel : vous avez un rendez-vous le mardi 17 novembre 2026 à 13 h 40. "
        "Pour toute question, contactez votre professionnel de santé."
    )
    patient = appointment.patient
    for word in (patient.birth_name, patient.first_birth_given_name, "cardio", "Périgueux", world.program.name):
        assert word.lower() not in sms["text"].lower()


def test_a_failed_sms_is_retried_with_the_same_client_ref(db_session, sessions, sms_config, provider):
    key = f"reminder:{uuid.uuid4().hex}:patient:2026-12-06"
    message = outbox.enqueue(
        db_session, channel="sms", recipient="0612345678", kind="reminder", payload=REMINDER, idempotency_key=key
    )
    db_session.commit()
    provider.fail_next(1, 502)
    connectors = build_registry(sms_config)

    dispatch_once(sessions, connectors=connectors)
    row = reload(db_session, message)
    assert (row.state, row.last_error) == (OutboxState.PENDING, "fournisseur SMS : réponse 502")
    dispatch_once(sessions, connectors=connectors, now=row.next_attempt_at + dt.timedelta(seconds=1))

    assert reload(db_session, message).state is OutboxState.SENT
    first, second = provider.requests
    assert first.json["client_ref"] == second.json["client_ref"] == client_ref(key)
