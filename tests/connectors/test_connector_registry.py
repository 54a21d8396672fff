"""Per-CPTS connector settings in the dispatcher: each message goes out through its channel's connector as
its CPTS configured it (the CPTS's settings over the server's), a channel a CPTS disabled waits, and the
settings of a whole batch are read in one query."""

import json
import shutil

import pytest

from connectors.dispatcher import NOT_CONFIGURED, UNUSABLE_SETTINGS, dispatch_once
from connectors.registry import build_registry
from connectors.settings import CHANNEL_FIELDS
from hub.models import ConnectorSetting, OutboxState
from tests import factories
from tests.connectors.test_dispatcher import queue, reload
from tests.queries import count_queries
from tests.servers import SmtpServer


@pytest.fixture
def other_smtp_server(test_ca):
    with SmtpServer(tls_context=test_ca.server_context()) as server:
        yield server


def configure(session, cpts, channel="email", *, is_enabled=True, **settings):
    row = ConnectorSetting(cpts_id=cpts.id, channel=channel, is_enabled=is_enabled, settings=json.dumps(settings))
    session.add(row)
    session.flush()
    return row


def test_each_message_leaves_through_its_cpts_settings_or_the_servers(
    db_session, sessions, smtp_server, other_smtp_server, email_connectors
):
    own, default, disabled = (factories.cpts(db_session) for _ in range(3))
    configure(db_session, own, SMTP_HOST="127.0.0.1", SMTP_PORT=other_smtp_server.port, SMTP_FROM="cpts@own.fr")
    configure(db_session, disabled, is_enabled=False, SMTP_HOST="127.0.0.1")
    mine = queue(db_session, recipient="a@example.org", cpts_id=own.id)
    theirs = queue(db_session, recipient="b@example.org", cpts_id=default.id)
    waiting = queue(db_session, recipient="c@example.org", cpts_id=disabled.id)
    db_session.commit()

    stats = dispatch_once(sessions, connectors=email_connectors)

    assert (stats.sent, stats.unconfigured) == (2, 1)
    assert [(m.mail_from, m.rcpt_tos) for m in other_smtp_server.messages] == [("cpts@own.fr", ("a@example.org",))]
    assert [(m.mail_from, m.rcpt_tos) for m in smtp_server.messages] == [("hub@cpts-test.fr", ("b@example.org",))]
    assert {reload(db_session, m).state for m in (mine, theirs)} == {OutboxState.SENT}
    row = reload(db_session, waiting)
    assert (row.state, row.attempts, row.last_error) == (OutboxState.PENDING, 0, NOT_CONFIGURED)


def test_a_cpts_can_configure_a_channel_the_server_has_not(db_session, sessions, smtp_server, test_ca, tmp_path):
    """No SMTP on the server: only the CPTS that set its own sends its e-mails; the others wait."""
    registry = build_registry(
        {
            "SMTP_STARTTLS": 1,
            "SMTP_TIMEOUT_SECONDS": 10,
            "CONNECTOR_FILES_DIR": str(tmp_path),
            "CONNECTOR_ALLOW_PRIVATE_HOSTS": 1,
        }
    )
    assert dict(registry) == {} and registry.channels == ["dmp", "email", "mssante", "sas", "sms", "webhook"]
    own, other = factories.cpts(db_session), factories.cpts(db_session)
    (tmp_path / str(own.id)).mkdir()
    shutil.copy(test_ca.ca_file, tmp_path / str(own.id) / "operateur-ca.pem")
    configure(
        db_session,
        own,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp_server.port,
        SMTP_FROM="cpts@own.fr",
        SMTP_CA_FILE="operateur-ca.pem",
    )
    sent, waiting = queue(db_session, cpts_id=own.id), queue(db_session, cpts_id=other.id)
    db_session.commit()

    stats = dispatch_once(sessions, connectors=registry)

    assert (stats.sent, stats.unconfigured) == (1, 1)
    assert reload(db_session, sent).state is OutboxState.SENT
    assert reload(db_session, waiting).last_error == NOT_CONFIGURED


def test_settings_the_connector_cannot_use_keep_the_message_waiting(db_session, sessions, email_connectors, tmp_path):
    cpts = factories.cpts(db_session)
    configure(db_session, cpts, SMTP_CA_FILE=str(tmp_path / "removed-since.pem"))
    message = queue(db_session, cpts_id=cpts.id)
    db_session.commit()

    dispatch_once(sessions, connectors=email_connectors)

    row = reload(db_session, message)
    assert (row.state, row.attempts, row.last_error) == (OutboxState.PENDING, 0, UNUSABLE_SETTINGS)


def test_only_declared_fields_of_a_row_are_used(db_session, sessions, smtp_server, email_connectors):
    """A password slipped into the row by hand is ignored: secrets come from the server's configuration."""
    cpts = factories.cpts(db_session)
    configure(db_session, cpts, SMTP_USERNAME="intrus", SMTP_PASSWORD="en-clair", SMTP_FROM="cpts@own.fr")
    queue(db_session, cpts_id=cpts.id)
    db_session.commit()

    assert dispatch_once(sessions, connectors=email_connectors).sent == 1
    assert [m.mail_from for m in smtp_server.messages] == ["cpts@own.fr"]


def test_one_settings_query_per_batch_and_connectors_kept_between_batches(
    db_session, engine, sessions, smtp_server, email_connectors
):
    cpts_rows = [factories.cpts(db_session) for _ in range(5)]
    for cpts in cpts_rows:
        configure(db_session, cpts, SMTP_FROM=f"cpts{cpts.id}@own.fr")
        for _ in range(4):
            queue(db_session, cpts_id=cpts.id)
    db_session.commit()

    with count_queries(engine) as seen:
        stats = dispatch_once(sessions, connectors=email_connectors, batch=10)
    assert stats.sent == 10
    assert sum("connector_settings" in statement for statement in seen) == 1
    built = email_connectors.every_connector()
    assert len(built) == 1 + 3  # the server's, and one per CPTS met in the batch

    dispatch_once(sessions, connectors=email_connectors, batch=10)
    assert set(built) <= set(email_connectors.every_connector())
    assert len(email_connectors.every_connector()) == 1 + 5
    assert len(smtp_server.messages) == 20


def test_edited_settings_take_effect_at_the_next_batch(db_session, sessions, smtp_server, email_connectors):
    cpts = factories.cpts(db_session)
    row = configure(db_session, cpts, SMTP_FROM="avant@own.fr")
    queue(db_session, cpts_id=cpts.id)
    db_session.commit()
    dispatch_once(sessions, connectors=email_connectors)

    row.settings = json.dumps({"SMTP_FROM": "apres@own.fr"})
    queue(db_session, cpts_id=cpts.id)
    db_session.commit()
    dispatch_once(sessions, connectors=email_connectors)

    assert [m.mail_from for m in smtp_server.messages] == ["avant@own.fr", "apres@own.fr"]
    assert len(email_connectors.every_connector()) == 2  # the old settings' connector was dropped


def test_the_admin_page_covers_every_registered_connector():
    """Each connector registered in build_registry, configured on the server or not, has its settings form."""
    assert build_registry({}).channels == sorted(CHANNEL_FIELDS)


def test_the_servers_credentials_never_go_to_a_host_a_cpts_chose(db_session):
    server = {"SMTP_HOST": "smtp.platform.fr", "SMTP_FROM": "hub@platform.fr", "SMTP_USERNAME": "hub"}
    server |= {"SMTP_PASSWORD": "platform-secret", "SMS_API_URL": "https://sms.platform.fr/v1", "SMS_API_TOKEN": "t0k"}
    registry = build_registry(server)
    same_host = registry.merged_settings({"SMTP_FROM": "cpts@own.fr"})
    assert same_host["SMTP_PASSWORD"] == "platform-secret", "the platform's host: its credentials are kept"
    elsewhere = registry.merged_settings(
        {"SMTP_HOST": "mx.attacker.example", "SMS_API_URL": "https://attacker.example/"}
    )
    assert elsewhere["SMTP_PASSWORD"] is None and elsewhere["SMTP_USERNAME"] is None
    assert elsewhere["SMS_API_TOKEN"] is None
