"""What a CPTS's settings designate stays within the CPTS, at send time too: an HTTPS connector checks, before
each connection, that its host is public (a name may designate another address than when it was saved), and
refuses otherwise with a permanent error, the message dead with the reason; a mail server a CPTS chose is
checked when its connector is built; a file is one of the CPTS's own directory, resolved there. Private
hosts pass only when the server's configuration allows them (as the other connector tests do, on loopback)."""

import ipaddress
import json
import shutil
import uuid

import pytest

from connectors import cpts_files, outbox
from connectors.base import OutgoingMessage, PermanentError
from connectors.dispatcher import UNUSABLE_SETTINGS, dispatch_once
from connectors.registry import build_registry
from connectors.reminders import SmsConnector
from connectors.targets import is_public
from hub.models import ConnectorSetting, OutboxState
from tests import factories
from tests.connectors.test_dispatcher import queue, reload
from tests.connectors.test_webhooks import EVENT, SECRET
from tests.http_servers import Answer, HttpsServer

ALLOW = "CONNECTOR_ALLOW_PRIVATE_HOSTS"


@pytest.fixture
def receiver(test_ca):
    with HttpsServer(test_ca, responder=lambda request: Answer(204)) as server:
        yield server


@pytest.fixture
def public_only(test_ca):
    """A server's configuration as in production: private hosts refused."""
    return {"WEBHOOK_SECRET": SECRET, "WEBHOOK_CA_FILE": str(test_ca.ca_file), "WEBHOOK_TIMEOUT_SECONDS": 5}


def webhook(session, url: str):
    message = outbox.enqueue(
        session,
        channel="webhook",
        recipient=url,
        kind="report.signed",
        payload=EVENT,
        idempotency_key=f"report.signed:{uuid.uuid4().hex}",
    )
    session.commit()
    return message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_webhook_to_a_private_host_is_dead_with_the_reason(db_session, sessions, public_only, receiver, host):
    message = webhook(db_session, f"https://{host}:{receiver.port}/hooks")

    stats = dispatch_once(sessions, connectors=build_registry(public_only))

    row = reload(db_session, message)
    assert (stats.dead, row.state, row.attempts) == (1, OutboxState.DEAD, 1)
    assert row.last_error == f"destinataire du webhook : adresse non publique refusée ({host}) : envoi refusé"
    assert receiver.requests == [], "nothing reached the private host"


def test_the_same_webhook_goes_out_when_the_server_allows_private_hosts(db_session, sessions, public_only, receiver):
    message = webhook(db_session, f"https://localhost:{receiver.port}/hooks")

    dispatch_once(sessions, connectors=build_registry(public_only | {ALLOW: 1}))

    assert reload(db_session, message).state is OutboxState.SENT
    assert len(receiver.requests) == 1


def test_a_webhook_address_saved_before_the_check_is_refused_at_send_time(db_session, sessions, public_only):
    """The metadata service of the cloud, set in a row the page would now refuse: refused before connecting."""
    cpts = factories.cpts(db_session)
    url = "https://169.254.169.254/latest/meta-data/"
    db_session.add(ConnectorSetting(cpts_id=cpts.id, channel="webhook", settings=json.dumps({"WEBHOOK_URL": url})))
    message = webhook(db_session, url)

    dispatch_once(sessions, connectors=build_registry(public_only))

    row = reload(db_session, message)
    assert row.state is OutboxState.DEAD and "adresse non publique refusée (169.254.169.254)" in row.last_error


def test_an_sms_provider_on_a_private_host_is_refused(test_ca):
    with HttpsServer(test_ca, responder=lambda request: Answer(200, {"id": "x"})) as provider:
        config = {"SMS_API_URL": provider.url + "/v1/sms", "SMS_API_TOKEN": "t", "SMS_CA_FILE": str(test_ca.ca_file)}
        connector = SmsConnector.from_config(config)
        message = OutgoingMessage(
            id=1, idempotency_key="sms:1", channel="sms", recipient="+33612345678", kind="reminder", payload="{}"
        )
        with pytest.raises(PermanentError, match="adresse non publique refusée"):
            connector.send(message)
        assert provider.requests == []


def test_a_mail_server_a_cpts_chose_on_loopback_keeps_its_messages_waiting(
    db_session, sessions, smtp_server, smtp_config
):
    cpts = factories.cpts(db_session)
    settings = {"SMTP_HOST": "localhost", "SMTP_PORT": smtp_server.port}
    db_session.add(ConnectorSetting(cpts_id=cpts.id, channel="email", settings=json.dumps(settings)))
    message = queue(db_session, cpts_id=cpts.id)
    db_session.commit()

    dispatch_once(sessions, connectors=build_registry(smtp_config | {ALLOW: 0}))

    row = reload(db_session, message)
    assert (row.state, row.attempts, row.last_error) == (OutboxState.PENDING, 0, UNUSABLE_SETTINGS)
    assert smtp_server.messages == []


@pytest.mark.parametrize("name", ["../{other}/ca.pem", "{other_dir}/ca.pem", "lien.pem", "/etc/ssl/ca.pem"])
def test_a_file_outside_the_cpts_directory_keeps_its_messages_waiting(
    db_session, sessions, smtp_config, test_ca, tmp_path, name
):
    own, other = factories.cpts(db_session), factories.cpts(db_session)
    for cpts in (own, other):
        (tmp_path / str(cpts.id)).mkdir()
    shutil.copy(test_ca.ca_file, tmp_path / str(other.id) / "ca.pem")
    (tmp_path / str(own.id) / "lien.pem").symlink_to(tmp_path / str(other.id) / "ca.pem")
    value = name.format(other=other.id, other_dir=tmp_path / str(other.id))
    db_session.add(ConnectorSetting(cpts_id=own.id, channel="email", settings=json.dumps({"SMTP_CA_FILE": value})))
    message = queue(db_session, cpts_id=own.id)
    db_session.commit()

    dispatch_once(sessions, connectors=build_registry(smtp_config | {"CONNECTOR_FILES_DIR": str(tmp_path)}))

    assert reload(db_session, message).last_error == UNUSABLE_SETTINGS


def test_a_file_name_resolves_under_the_cpts_directory_only(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    assert cpts_files.resolve(tmp_path, "ca.pem") == (tmp_path / "ca.pem").resolve()
    for name in ("", ".", "..", "../ca.pem", str(tmp_path / "ca.pem"), "sous/ca.pem", "absent.pem", "ca.pem\x00"):
        with pytest.raises(cpts_files.UnusableFile):
            cpts_files.resolve(tmp_path, name)
    assert cpts_files.available_files(tmp_path / "absent") == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2a00:1450:4007:80a::200e", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 -- an address judged, never bound
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("2002:7f00:1::1", False),  # 6to4 carrying 127.0.0.1
        ("2002:5db8:d70e::1", True),  # 6to4 carrying a public address
    ],
)
def test_which_addresses_are_public(address, public):
    assert is_public(ipaddress.ip_address(address)) is public
