"""The webhook connector against a real HTTPS server on loopback: Standard Webhooks signatures that a receiver
verifies with `verify_signature` (and that fail with another secret, another body, or too late), https only
with verified certificates (S16), the outbox key as `webhook-id` on every attempt (R2), answers sorted into
transient and permanent errors, and the whole path through the dispatcher."""

import base64
import datetime as dt
import json
import time
import uuid

import pytest

from connectors import outbox
from connectors.base import OutgoingMessage, PermanentError, TransientError
from connectors.dispatcher import dispatch_once
from connectors.registry import build_registry
from connectors.webhooks import InvalidSignature, WebhookConnector, sign, verify_signature
from hub.models import OutboxState
from tests.connectors.test_dispatcher import reload
from tests.http_servers import Answer, HttpsServer
from tests.servers import TestCA, free_port

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()
EVENT = {"event": "report.signed", "report_id": 12, "appointment_id": 41}


@pytest.fixture
def receiver(test_ca):
    with HttpsServer(test_ca, responder=lambda request: Answer(204)) as server:
        yield server


@pytest.fixture
def webhook_config(test_ca):
    return {
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_CA_FILE": str(test_ca.ca_file),
        "WEBHOOK_TIMEOUT_SECONDS": 5,
        "CONNECTOR_ALLOW_PRIVATE_HOSTS": 1,  # the test servers listen on loopback
    }


@pytest.fixture
def connector(webhook_config):
    connector = WebhookConnector.from_config(webhook_config)
    yield connector
    connector.close()


def outgoing(url: str, key: str = "report.signed:12", payload: dict | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        id=1,
        idempotency_key=key,
        channel="webhook",
        recipient=url,
        kind="report.signed",
        payload=json.dumps(EVENT if payload is None else payload),
    )


def test_a_webhook_is_signed_json_that_the_receiver_verifies(connector, receiver):
    before = int(time.time())
    receipt = connector.send(outgoing(receiver.url + "/hooks/cpts"))

    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/hooks/cpts")
    assert request.headers["content-type"] == "application/json"
    assert request.body == b'{"event":"report.signed","report_id":12,"appointment_id":41}'
    assert request.headers["webhook-id"] == "report.signed:12"
    assert before <= int(request.headers["webhook-timestamp"]) <= time.time()
    assert request.headers["webhook-signature"].startswith("v1,")
    verify_signature(SECRET, request.headers, request.body)  # raises if it does not verify
    assert receipt.id == "report.signed:12 (204)"


def test_another_secret_another_body_or_no_signature_do_not_verify(connector, receiver):
    connector.send(outgoing(receiver.url))
    [request] = receiver.requests
    with pytest.raises(InvalidSignature, match="signature invalide"):
        verify_signature(OTHER_SECRET, request.headers, request.body)
    with pytest.raises(InvalidSignature, match="signature invalide"):
        verify_signature(SECRET, request.headers, request.body.replace(b"12", b"13"))
    with pytest.raises(InvalidSignature, match="signature invalide"):
        verify_signature(SECRET, request.headers | {"webhook-id": "report.signed:13"}, request.body)
    with pytest.raises(InvalidSignature, match="absents"):
        verify_signature(SECRET, {k: v for k, v in request.headers.items() if k != "webhook-signature"}, request.body)


def test_the_signature_matches_the_standard_webhooks_example():
    """The example of the Standard Webhooks specification, so that any compliant receiver library agrees."""
    secret, body = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b'{"test": 2432232314}'
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    verify_signature(secret, headers, body, now=1614265330)


def test_the_timestamp_must_be_within_the_tolerance():
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    body, sent_at = b'{"event":"x"}', 1_800_000_000
    headers = {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(sent_at),
        "Webhook-Signature": sign(key, "msg_1", sent_at, body),
    }
    verify_signature(SECRET, headers, body, now=sent_at + 299)
    verify_signature(SECRET, headers, body, now=sent_at - 299)  # a receiver's clock a little behind
    with pytest.raises(InvalidSignature, match="trop ancien"):
        verify_signature(SECRET, headers, body, now=sent_at + 301)  # a replay, later
    with pytest.raises(InvalidSignature, match="trop ancien"):
        verify_signature(SECRET, headers, body, now=sent_at - 301)
    verify_signature(SECRET, headers, body, now=sent_at + 3000, tolerance=3600)
    with pytest.raises(InvalidSignature, match="timestamp invalide"):
        verify_signature(SECRET, headers | {"Webhook-Timestamp": "hier"}, body, now=sent_at)


def test_one_valid_signature_among_several_is_enough_during_a_secret_rotation():
    key, old_key = (base64.b64decode(s.removeprefix("whsec_")) for s in (SECRET, OTHER_SECRET))
    body, sent_at = b"{}", 1_800_000_000
    both = f"{sign(old_key, 'm', sent_at, body)} {sign(key, 'm', sent_at, body)}"
    headers = {"webhook-id": "m", "webhook-timestamp": str(sent_at), "webhook-signature": both}
    verify_signature(SECRET, headers, body, now=sent_at)
    verify_signature(OTHER_SECRET, headers, body, now=sent_at)


def test_a_resend_carries_the_same_id_and_a_fresh_signed_timestamp(webhook_config, receiver):
    ticks = iter([1_800_000_000, 1_800_000_090])
    connector = WebhookConnector(
        secret=SECRET, ca_file=webhook_config["WEBHOOK_CA_FILE"], clock=lambda: next(ticks), allow_private_hosts=True
    )
    connector.send(outgoing(receiver.url))
    connector.send(outgoing(receiver.url))
    connector.close()
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "report.signed:12"
    assert (first.headers["webhook-timestamp"], second.headers["webhook-timestamp"]) == ("1800000000", "1800000090")
    for request in (first, second):
        verify_signature(SECRET, request.headers, request.body, now=int(request.headers["webhook-timestamp"]))
    assert first.connection == second.connection  # one TLS connection for both


# --- refusals -------------------------------------------------------------------------------------------


def test_plain_http_is_refused_and_nothing_is_sent(connector, receiver):
    with pytest.raises(PermanentError, match="https"):
        connector.send(outgoing(receiver.url.replace("https:", "http:")))
    with pytest.raises(PermanentError, match="https"):
        connector.send(outgoing("ftp://example.org/hook"))
    assert receiver.requests == []


def test_a_receiver_with_a_certificate_from_an_unknown_authority_gets_nothing(webhook_config, receiver, tmp_path):
    connector = WebhookConnector.from_config(webhook_config | {"WEBHOOK_CA_FILE": str(TestCA(tmp_path).ca_file)})
    with pytest.raises(TransientError, match="certificat"):
        connector.send(outgoing(receiver.url))
    connector.close()
    assert receiver.requests == []
    assert receiver.wait_for_refused_handshake()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, TransientError),
        (503, TransientError),
        (408, TransientError),
        (429, TransientError),
        (410, PermanentError),
        (404, PermanentError),
        (400, PermanentError),
        (401, TransientError),  # the hub's credentials: fixed by the admin, then everything drains
        (403, PermanentError),
        (307, TransientError),  # not followed: the configured address is to be fixed
    ],
)
def test_answers_are_sorted_into_transient_and_permanent(connector, receiver, status, error):
    receiver.queue(Answer(status, {"title": "Refus", "detail": "identifiant inconnu"}))
    with pytest.raises(error, match=str(status)) as caught:
        connector.send(outgoing(receiver.url))
    assert type(caught.value) is error


def test_a_refusal_keeps_the_receivers_reason(connector, receiver):
    receiver.queue(Answer(422, {"title": "Événement inconnu", "detail": "report.signed n'est pas attendu"}))
    with pytest.raises(PermanentError) as caught:
        connector.send(outgoing(receiver.url))
    assert str(caught.value) == (
        "destinataire du webhook : réponse 422 (Événement inconnu ; report.signed n'est pas attendu)"
    )


def test_an_unreachable_receiver_is_transient(connector):
    with pytest.raises(TransientError, match="injoignable"):
        connector.send(outgoing(f"https://127.0.0.1:{free_port()}/hook"))


# --- configuration --------------------------------------------------------------------------------------


def test_no_secret_no_webhooks_and_a_bad_secret_is_refused_at_start(webhook_config):
    assert WebhookConnector.from_config(webhook_config | {"WEBHOOK_SECRET": None}) is None
    assert "webhook" not in build_registry({})
    with pytest.raises(ValueError, match="whsec_"):
        WebhookConnector.from_config(webhook_config | {"WEBHOOK_SECRET": "whsec_pas du base64 !"})
    with pytest.raises(ValueError, match="trop court"):
        WebhookConnector.from_config(
            webhook_config | {"WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"short").decode()}
        )


# --- through the dispatcher -----------------------------------------------------------------------------


def test_a_queued_webhook_is_delivered_by_the_dispatcher(db_session, sessions, webhook_config, receiver):
    key = f"report.signed:{uuid.uuid4().hex}"
    message = outbox.enqueue(
        db_session,
        channel="webhook",
        recipient=receiver.url + "/hooks",
        kind="report.signed",
        payload=EVENT,
        idempotency_key=key,
    )
    db_session.commit()
    receiver.fail_next(1, 502)
    connectors = build_registry(webhook_config)

    dispatch_once(sessions, connectors=connectors)
    row = reload(db_session, message)
    assert (row.state, row.last_error) == (OutboxState.PENDING, "destinataire du webhook : réponse 502")
    dispatch_once(sessions, connectors=connectors, now=row.next_attempt_at + dt.timedelta(seconds=1))

    row = reload(db_session, message)
    assert (row.state, row.attempts, row.receipt) == (OutboxState.SENT, 2, f"{key} (204)")
    failed, delivered = receiver.requests
    assert failed.headers["webhook-id"] == delivered.headers["webhook-id"] == key  # the receiver can dedupe
    assert json.loads(delivered.body) == EVENT
    verify_signature(SECRET, delivered.headers, delivered.body)


def test_a_gone_receiver_makes_the_message_dead_at_once(db_session, sessions, webhook_config, receiver):
    message = outbox.enqueue(
        db_session,
        channel="webhook",
        recipient=receiver.url,
        kind="report.signed",
        payload=EVENT,
        idempotency_key=f"report.signed:{uuid.uuid4().hex}",
    )
    db_session.commit()
    receiver.queue(Answer(410))

    dispatch_once(sessions, connectors=build_registry(webhook_config))

    row = reload(db_session, message)
    assert (row.state, row.attempts, row.last_error) == (OutboxState.DEAD, 1, "destinataire du webhook : réponse 410")
