"""The MSSanté connector against a real SMTP server on loopback that requires STARTTLS and a client
certificate from the test CA: the XDM zip of the received message is opened and checked, the Message-ID
is stable, one e-mail per mailbox, no downgrade and no unverified server (S16), SMTP replies sorted into
transient and permanent errors, and the documents checked against the hash frozen at signing."""

import json
import shutil
import uuid

import pytest
from sqlalchemy import select

from connectors import outbox
from connectors.base import OutgoingMessage, PermanentError, TransientError
from connectors.dispatcher import dispatch_once
from connectors.mssante import MssanteConnector, mdn_token
from connectors.registry import build_registry
from connectors.settings import fields_of
from hub.documents.clinical import DocumentPackage
from hub.documents.store import store_blob, stored_path
from hub.models import ConnectorSetting, OutboxMessage, OutboxState
from tests import factories
from tests.connectors.test_xdm import DOCUMENT_UID, ENTRY_PATIENT_ID, ENTRY_UNIQUE_ID, INS, clinical_document, read_xdm
from tests.connectors.test_xdm import rendered as render_package
from tests.servers import SmtpServer, TestCA

SENDER = "hub-app@cpts-livradois.mssante.fr"
DOMAIN = "cpts-livradois.mssante.fr"
CARDIOLOGIST = "paul.martin@hopital.mssante.fr"
GP = "jeanne.roux@medecin.mssante.fr"
PATIENT = f"{INS}@patient.mssante.fr"
CLIENT_NAME = "hub-app.cpts-livradois.fr"


@pytest.fixture
def client_cert(test_ca, tmp_path):
    return test_ca.client_cert(tmp_path, CLIENT_NAME)


@pytest.fixture
def mssante_server(test_ca):
    """The operator's submission server: STARTTLS required, and the structure's certificate with it."""
    with SmtpServer(tls_context=test_ca.server_context(require_client_cert=True)) as server:
        yield server


@pytest.fixture
def upload_dir(tmp_path):
    directory = tmp_path / "uploads"
    directory.mkdir()
    return directory


@pytest.fixture
def settings(mssante_server, test_ca, client_cert, upload_dir):
    return settings_for(mssante_server, test_ca.ca_file, client_cert, upload_dir)


def settings_for(server, ca_file, client_cert, upload_dir, **overrides) -> dict:
    cert_file, key_file = client_cert or (None, None)
    return {
        "MSSANTE_HOST": server.host,
        "MSSANTE_PORT": server.port,
        "MSSANTE_SENDER": SENDER,
        "MSSANTE_CA_FILE": str(ca_file),
        "MSSANTE_CERT_FILE": str(cert_file) if cert_file else None,
        "MSSANTE_KEY_FILE": str(key_file) if key_file else None,
        "UPLOAD_DIR": str(upload_dir),
    } | overrides


def stored(upload_dir, **document) -> DocumentPackage:
    """A signed document's package, its renderings in the store as the reports workflow leaves them."""
    package, files = render_package(clinical_document(**document))
    for rendering in package.renderings:
        store_blob(upload_dir, files[rendering.filename])
    return package


def outgoing(package: DocumentPackage, *, recipient=CARDIOLOGIST, key=None) -> OutgoingMessage:
    return OutgoingMessage(
        id=1,
        idempotency_key=key or f"doc:{package.document.document_uid}:mssante:{recipient}",
        channel="mssante",
        recipient=recipient,
        kind="document:85208-7",
        payload=json.dumps(package.to_payload() | {"recipient_role": "specialist"}),
    )


def connector(settings) -> MssanteConnector:
    return build_registry(settings)["mssante"]


def attachments(received) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in received.parsed.iter_attachments()}


# --- the message --------------------------------------------------------------------------------------------


def test_a_document_goes_as_one_xdm_message_to_its_mailbox(mssante_server, settings, upload_dir):
    package = stored(upload_dir)
    message = outgoing(package)
    sender = connector(settings)

    receipt = sender.send(message)
    sender.close()

    [received] = mssante_server.messages
    assert received.over_tls and received.client_cert_subject == CLIENT_NAME
    assert (received.mail_from, received.rcpt_tos) == (SENDER, (CARDIOLOGIST,))
    assert received.subject == "XDM/1.0/DDM+Compte rendu de téléconsultation"
    assert received.message_id == receipt.id == f"<{mdn_token(message.idempotency_key)}@{DOMAIN}>"
    assert received.parsed["Disposition-Notification-To"] == SENDER
    files = attachments(received)
    assert list(files) == ["IHE_XDM.zip", "DOC0001.PDF"]
    xdm = read_xdm(files["IHE_XDM.zip"])
    for entry in xdm.entries:
        rendering = next(r for r in package.renderings if r.filename == entry.slots["URI"][0])
        content = xdm.files[f"IHE_XDM/SUBSET01/{rendering.filename}"]
        assert len(content) == rendering.size == int(entry.slots["size"][0])
        assert stored_path(upload_dir, rendering.sha256).read_bytes() == content
    assert xdm.entry("text/xml").identifiers[ENTRY_UNIQUE_ID] == DOCUMENT_UID
    assert xdm.entry("text/xml").identifiers[ENTRY_PATIENT_ID].startswith(f"{INS}^^^&")
    assert files["DOC0001.PDF"] == xdm.files["IHE_XDM/SUBSET01/DOC0001.PDF"]


def test_the_text_says_nothing_about_the_patient(mssante_server, settings, upload_dir):
    sender = connector(settings)
    sender.send(outgoing(stored(upload_dir)))
    sender.close()

    [received] = mssante_server.messages
    assert "CPTS du Livradois" in received.body
    assert "DUPONT" not in received.body and INS not in received.body
    assert "DUPONT" not in str(received.parsed.items())


def test_without_a_qualified_identity_the_ins_does_not_travel(mssante_server, settings, upload_dir):
    sender = connector(settings)
    sender.send(outgoing(stored(upload_dir, qualified=False), recipient=GP))
    sender.close()

    [received] = mssante_server.messages
    xdm = read_xdm(attachments(received)["IHE_XDM.zip"])
    assert xdm.entry("text/xml").identifiers[ENTRY_PATIENT_ID] == "42^^^&1.2.250.1.999.1.1.7&ISO^PI"
    assert all(INS.encode() not in content for content in xdm.files.values())


def test_a_resend_is_the_same_message_and_each_mailbox_gets_its_own(mssante_server, settings, upload_dir):
    package = stored(upload_dir)
    sender = connector(settings)
    sender.send(outgoing(package))
    sender.send(outgoing(package))  # the dispatcher died before marking it sent (R2)
    sender.send(outgoing(package, recipient=PATIENT))
    sender.close()

    cardiologist, again, patient = mssante_server.messages
    assert [m.rcpt_tos for m in (cardiologist, again, patient)] == [(CARDIOLOGIST,), (CARDIOLOGIST,), (PATIENT,)]
    assert again.message_id == cardiologist.message_id != patient.message_id
    assert attachments(again)["IHE_XDM.zip"] == attachments(cardiologist)["IHE_XDM.zip"]
    assert "doc:" not in cardiologist.message_id  # the key itself does not travel


# --- transport security (S16) ---------------------------------------------------------------------------------


def test_without_the_structure_certificate_the_server_refuses_the_connection(mssante_server, settings):
    uncertified = MssanteConnector(
        host=mssante_server.host,
        port=mssante_server.port,
        sender=SENDER,
        upload_dir=settings["UPLOAD_DIR"],
        ca_file=settings["MSSANTE_CA_FILE"],
        timeout=10,
    )
    package = stored(settings["UPLOAD_DIR"])
    with pytest.raises(TransientError):
        uncertified.send(outgoing(package))
    uncertified.close()
    assert mssante_server.messages == []

    certified = connector(settings)
    certified.send(outgoing(package))
    certified.close()
    assert len(mssante_server.messages) == 1


def test_a_certificate_from_another_authority_is_refused_too(mssante_server, test_ca, tmp_path, upload_dir):
    stranger = TestCA(tmp_path).client_cert(tmp_path, CLIENT_NAME)
    sender = connector(settings_for(mssante_server, test_ca.ca_file, stranger, upload_dir))
    with pytest.raises(TransientError):
        sender.send(outgoing(stored(upload_dir)))
    sender.close()
    assert mssante_server.messages == []


def test_a_server_that_does_not_offer_starttls_gets_nothing(test_ca, client_cert, upload_dir):
    with SmtpServer() as plain:
        sender = connector(settings_for(plain, test_ca.ca_file, client_cert, upload_dir))
        with pytest.raises(TransientError, match="STARTTLS"):
            sender.send(outgoing(stored(upload_dir)))
        assert plain.messages == []


def test_a_server_whose_certificate_does_not_verify_gets_nothing(test_ca, tmp_path, client_cert, upload_dir):
    impostor = TestCA(tmp_path)
    with SmtpServer(tls_context=impostor.server_context()) as server:
        sender = connector(settings_for(server, test_ca.ca_file, client_cert, upload_dir))
        with pytest.raises(TransientError, match="certificat"):
            sender.send(outgoing(stored(upload_dir)))
        assert server.messages == []


# --- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error"),
    [("451 4.3.0 Mailbox busy, try later", TransientError), ("550 5.1.1 Unknown user", PermanentError)],
)
def test_4xx_is_transient_and_5xx_permanent(mssante_server, settings, upload_dir, reply, error):
    mssante_server.refuse(CARDIOLOGIST, reply)
    package = stored(upload_dir)
    sender = connector(settings)
    with pytest.raises(error, match=reply[:3]):
        sender.send(outgoing(package))
    sender.send(outgoing(package, recipient=GP))
    sender.close()
    assert [m.rcpt_tos for m in mssante_server.messages] == [(GP,)]


def test_a_document_altered_or_lost_after_signing_is_never_sent(mssante_server, settings, upload_dir):
    package = stored(upload_dir)
    pdf = package.rendering("pdf")
    path = stored_path(upload_dir, pdf.sha256)
    path.write_bytes(path.read_bytes() + b"%")
    sender = connector(settings)
    with pytest.raises(PermanentError, match="altéré"):
        sender.send(outgoing(package))
    path.unlink()
    with pytest.raises(PermanentError, match="introuvable"):
        sender.send(outgoing(package))
    sender.close()
    assert mssante_server.messages == []


@pytest.mark.parametrize(
    "recipient", ["paul.martin@gmail.com", "a@hopital.mssante.fr, b@hopital.mssante.fr", "x@mssante.fr.evil.example"]
)
def test_only_one_mailbox_of_the_mssante_space(mssante_server, settings, upload_dir, recipient):
    with pytest.raises(PermanentError):
        connector(settings).send(outgoing(stored(upload_dir), recipient=recipient))
    assert mssante_server.messages == []


def test_a_message_without_its_document_is_permanent(mssante_server, settings, upload_dir):
    package = stored(upload_dir)
    broken = OutgoingMessage(
        id=1, idempotency_key="k", channel="mssante", recipient=CARDIOLOGIST, kind="document", payload="{}"
    )
    without_cda = outgoing(DocumentPackage(package.document, (package.rendering("pdf"),)))
    sender = connector(settings)
    with pytest.raises(PermanentError, match="illisible"):
        sender.send(broken)
    with pytest.raises(PermanentError, match="CDA"):
        sender.send(without_cda)
    assert mssante_server.messages == []


@pytest.mark.parametrize("missing", ["MSSANTE_HOST", "MSSANTE_SENDER", "MSSANTE_CERT_FILE", "UPLOAD_DIR"])
def test_the_connector_is_not_configured_without_its_settings(settings, missing):
    assert "mssante" in build_registry(settings)
    assert "mssante" not in build_registry(settings | {missing: None})


def test_its_own_upload_dir_wins(settings, tmp_path):
    chosen = MssanteConnector.from_settings(settings | {"MSSANTE_UPLOAD_DIR": str(tmp_path / "mss")})
    assert chosen.upload_dir == tmp_path / "mss"


# --- through the outbox ---------------------------------------------------------------------------------------


def test_an_outbox_message_is_dispatched_and_its_receipt_is_the_message_id(
    db_session, sessions, mssante_server, settings, upload_dir
):
    package = stored(upload_dir)
    key = f"doc:{package.document.document_uid}:mssante:{CARDIOLOGIST}:{uuid.uuid4().hex}"
    message = outbox.enqueue(
        db_session,
        channel="mssante",
        recipient=CARDIOLOGIST,
        kind="document:85208-7",
        payload=package.to_payload(),
        idempotency_key=key,
    )
    db_session.commit()
    registry = build_registry(settings)

    dispatch_once(sessions, connectors=registry)
    dispatch_once(sessions, connectors=registry)

    db_session.expire_all()
    row = db_session.scalars(select(OutboxMessage).where(OutboxMessage.id == message.id)).one()
    assert (row.state, row.attempts) == (OutboxState.SENT, 1)
    assert row.receipt == f"<{mdn_token(key)}@{DOMAIN}>"
    assert mssante_server.message_ids() == {row.receipt: 1}
    [received] = mssante_server.messages
    assert read_xdm(attachments(received)["IHE_XDM.zip"]).entry("text/xml").identifiers[ENTRY_UNIQUE_ID] == (
        DOCUMENT_UID
    )


def test_a_cpts_sends_from_its_own_mailbox_with_its_own_certificate(
    db_session, sessions, mssante_server, test_ca, client_cert, upload_dir, tmp_path
):
    """The server knows the document store and the operator's CA; the CPTS's admin set the rest, its
    certificate and key chosen by name among the files of its directory."""
    cpts = factories.cpts(db_session)
    cert_file, key_file = client_cert
    own_files = tmp_path / "connector-files" / str(cpts.id)
    own_files.mkdir(parents=True)
    shutil.copy(cert_file, own_files / "structure.crt")
    shutil.copy(key_file, own_files / "structure.key")
    own = {
        "MSSANTE_HOST": mssante_server.host,
        "MSSANTE_PORT": mssante_server.port,
        "MSSANTE_SENDER": "coordination@cpts-val.mssante.fr",
        "MSSANTE_CERT_FILE": "structure.crt",
        "MSSANTE_KEY_FILE": "structure.key",
    }
    assert set(own) <= set(fields_of("mssante"))
    db_session.add(ConnectorSetting(cpts_id=cpts.id, channel="mssante", is_enabled=True, settings=json.dumps(own)))
    package = stored(upload_dir)
    message = outbox.enqueue(
        db_session,
        channel="mssante",
        recipient=GP,
        kind="document:85208-7",
        payload=package.to_payload(),
        idempotency_key=f"doc:{uuid.uuid4().hex}",
        cpts_id=cpts.id,
    )
    db_session.commit()
    registry = build_registry(
        {
            "UPLOAD_DIR": str(upload_dir),
            "MSSANTE_CA_FILE": str(test_ca.ca_file),
            "CONNECTOR_FILES_DIR": str(own_files.parent),
            "CONNECTOR_ALLOW_PRIVATE_HOSTS": 1,  # the test server listens on loopback
        }
    )
    assert "mssante" not in registry  # nothing at the server's level

    dispatch_once(sessions, connectors=registry)

    db_session.expire_all()
    assert db_session.get(OutboxMessage, message.id).state is OutboxState.SENT
    [received] = mssante_server.messages
    assert (received.mail_from, received.rcpt_tos) == ("coordination@cpts-val.mssante.fr", (GP,))
    assert received.client_cert_subject == CLIENT_NAME
