"""The e-mail connector against a real SMTP server on loopback: STARTTLS with a verified certificate,
no downgrade (S16), one message per recipient, a stable Message-ID, French text with no health data,
and SMTP replies sorted into transient and permanent errors."""

import asyncio
import base64
import json
import threading

import pytest

from connectors.base import OutgoingMessage, PermanentError, TransientError
from connectors.email import NOTICES, EmailConnector, message_id_for, render
from connectors.registry import build_registry
from tests.servers import Recorder, SmtpServer, TestCA, free_port

REMINDER = {"appointment_id": 41, "local_date": "2026-03-30", "local_time": "14:00", "recipient_kind": "idel"}


def outgoing(key="reminder:41:idel:2026-03-30", recipient="idel@example.org", kind="reminder", payload=None):
    return OutgoingMessage(
        id=1,
        idempotency_key=key,
        channel="email",
        recipient=recipient,
        kind=kind,
        payload=json.dumps(REMINDER if payload is None else payload),
    )


def connector_for(config: dict) -> EmailConnector:
    return build_registry(config)["email"]


def test_a_reminder_goes_over_verified_starttls_to_its_one_recipient(smtp_server, smtp_config):
    connector = connector_for(smtp_config)
    receipt = connector.send(outgoing())
    connector.close()

    [received] = smtp_server.messages
    assert received.over_tls
    assert received.rcpt_tos == ("idel@example.org",)
    assert received.mail_from == "hub@cpts-test.fr"
    assert received.message_id == receipt.id == message_id_for("reminder:41:idel:2026-03-30", "cpts-test.fr")
    assert received.subject == "Rappel de rendez-vous"
    assert "Rappel : vous avez un rendez-vous le lundi 30 mars 2026 à 14 h 00." in received.body
    assert "https://hub.cpts-test.fr/" in received.body


def test_the_message_id_is_stable_so_a_resend_is_recognisable(smtp_server, smtp_config):
    connector = connector_for(smtp_config)
    connector.send(outgoing())
    connector.send(outgoing())
    connector.send(outgoing(key="reminder:41:patient:2026-03-30", recipient="patient@example.org"))
    connector.close()

    ids = smtp_server.message_ids()
    assert sorted(ids.values()) == [1, 2]
    assert ids[message_id_for("reminder:41:idel:2026-03-30", "cpts-test.fr")] == 2
    assert "reminder" not in "".join(ids)  # the key itself does not travel


def test_nothing_but_a_date_a_time_and_a_link_is_written(smtp_server, smtp_config):
    leaky = REMINDER | {"recipient_kind": "patient", "reason": "insuffisance cardiaque", "patient": "DUPONT Marie"}
    connector = connector_for(smtp_config)
    connector.send(outgoing(recipient="patient@example.org", payload=leaky))
    connector.close()

    [received] = smtp_server.messages
    text = received.raw.decode()
    assert "cardiaque" not in text
    assert "DUPONT" not in text
    assert "le lundi 30 mars 2026 à 14 h 00" in received.body
    assert "http" not in received.body  # a patient has no account on the hub: no link for them


@pytest.mark.parametrize(
    ("kind", "subject"),
    [
        ("escalation", "Visite non confirmée à moins de 48 h"),
        ("visit_offered", "Visite d'accompagnement proposée"),
        ("visit_declined", "Visite refusée"),
        ("appointment_cancelled", "Rendez-vous annulé"),
        ("something_new", "Nouveau message du hub de la CPTS"),
    ],
)
def test_every_kind_has_a_french_subject(smtp_server, smtp_config, kind, subject):
    connector = connector_for(smtp_config)
    connector.send(outgoing(kind=kind, payload={"appointment_id": 41}))
    connector.close()
    assert [m.subject for m in smtp_server.messages] == [subject]


def test_a_server_that_does_not_offer_starttls_gets_nothing(test_ca):
    with SmtpServer() as plain:
        connector = connector_for(plain.config(test_ca.ca_file))
        with pytest.raises(TransientError, match="STARTTLS"):
            connector.send(outgoing())
        assert plain.messages == []


@pytest.mark.parametrize("hosts", [("127.0.0.1",), ("other.example",)], ids=["unknown CA", "wrong host"])
def test_a_certificate_that_does_not_verify_gets_nothing(test_ca, tmp_path, hosts):
    """A certificate from another CA, or from the right CA for another host, is refused."""
    issuer = TestCA(tmp_path) if hosts == ("127.0.0.1",) else test_ca
    with SmtpServer(tls_context=issuer.server_context(*hosts)) as server:
        connector = connector_for(server.config(test_ca.ca_file))
        with pytest.raises(TransientError, match="certificat"):
            connector.send(outgoing())
        assert server.messages == []


@pytest.mark.parametrize(
    ("reply", "error"),
    [("451 4.3.0 Mailbox busy, try later", TransientError), ("550 5.1.1 Unknown user", PermanentError)],
)
def test_4xx_is_transient_and_5xx_permanent(smtp_server, smtp_config, reply, error):
    smtp_server.refuse("idel@example.org", reply)
    connector = connector_for(smtp_config)
    with pytest.raises(error, match=reply[:3]):
        connector.send(outgoing())
    connector.send(outgoing(recipient="other@example.org"))  # the kept connection still works
    connector.close()
    assert [m.rcpt_tos for m in smtp_server.messages] == [("other@example.org",)]


def test_an_unreachable_server_is_transient(test_ca):
    connector = connector_for(
        {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": free_port(), "SMTP_FROM": "hub@cpts-test.fr", "SMTP_CA_FILE": None}
    )
    with pytest.raises(TransientError, match="injoignable"):
        connector.send(outgoing())


def test_one_recipient_per_message(smtp_server, smtp_config):
    connector = connector_for(smtp_config)
    with pytest.raises(PermanentError, match="adresse"):
        connector.send(outgoing(recipient="a@example.org, b@example.org"))
    assert smtp_server.messages == []


def test_the_connector_is_not_configured_without_a_host_and_a_sender():
    assert build_registry({}) == {}
    assert build_registry({"SMTP_HOST": "127.0.0.1", "SMTP_FROM": None}) == {}
    assert build_registry({"SMTP_HOST": None, "SMTP_FROM": "hub@cpts-test.fr"}) == {}


def test_credentials_never_travel_in_clear():
    with pytest.raises(ValueError, match="STARTTLS"):
        EmailConnector(host="127.0.0.1", sender="hub@cpts-test.fr", starttls=False, username="hub", password="x")


@pytest.mark.parametrize("kind", sorted(NOTICES))
def test_every_notification_kind_has_its_own_subject_and_text(kind):
    subject, body = render(kind, {"referral_id": 12, "teleexpertise_id": 7}, base_url="https://hub.cpts.fr")
    assert subject == NOTICES[kind][0] and NOTICES[kind][1] in body
    assert "12" not in body and "7" not in body, "ids stay in the payload, the text leads to the hub"
    assert body.endswith("Détails sur le hub (après connexion) : https://hub.cpts.fr/")


def test_an_accented_subject_and_body_arrive_intact(smtp_server, email_connectors):
    message = OutgoingMessage(
        id=1, idempotency_key="accents", channel="email", recipient="a@example.org", kind="escalation", payload="{}"
    )
    connector = email_connectors["email"]
    connector.send(message)
    connector.close()
    (received,) = smtp_server.messages
    assert received.subject == "Visite non confirmée à moins de 48 h"
    assert "n'est toujours pas confirmé par l'IDEL accompagnant·e" in received.body


class GatedRecorder(Recorder):
    """Holds each message's reply until released, saying when one has arrived."""

    def __init__(self):
        super().__init__()
        self.arrived, self.release = threading.Event(), threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.arrived.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 10)
        return await super().handle_DATA(server, session, envelope)


def test_a_connection_in_use_when_the_transport_is_closed_is_closed_once_given_back(test_ca):
    """The registry closes a connector it replaces while the dispatcher's threads still send with it: their
    connections must not stay open in a transport nobody will close again. One taken after close is kept."""
    server = SmtpServer(tls_context=test_ca.server_context())
    server.handler = server.controller.handler = GatedRecorder()
    with server:
        connector = connector_for(server.config(test_ca.ca_file))
        sending = threading.Thread(target=connector.send, args=(outgoing(key="reminder:1"),))
        sending.start()
        try:
            assert server.handler.arrived.wait(10)
            connector.close()  # while the message is on its connection
        finally:
            server.handler.release.set()
            sending.join(10)

        assert len(server.messages) == 1
        assert connector.transport.open_connections == 0

        connector.send(outgoing(key="reminder:2"))
        assert connector.transport.open_connections == 1
        connector.close()
        assert connector.transport.open_connections == 0


def test_the_body_is_base64_in_lines_of_at_most_76_characters(smtp_server, email_connectors):
    """RFC 2045 §6.8, which strict relays enforce."""
    connector = email_connectors["email"]
    wire = connector.compose(outgoing(kind="escalation", payload={}))
    connector.close()
    _headers, _, text = wire.partition(b"\r\n\r\n")
    lines = text.split(b"\r\n")
    assert lines[-1] == b"" and len(lines) > 2
    assert all(len(line) == 76 for line in lines[:-2]) and 0 < len(lines[-2]) <= 76
    assert "n'est toujours pas confirmé" in base64.b64decode(b"".join(lines)).decode()
