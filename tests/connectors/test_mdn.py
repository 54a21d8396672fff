"""The MDN reader against a real IMAP server (a private Dovecot on loopback, STARTTLS on a certificate from
the test CA): `processed` acknowledges, 902 to 906 and failures refuse with the receiver's code, 900/901 come
with theirs, a plain e-mail with a code in brackets in its subject is read too, other mail is left alone, and
an answer is read once."""

import dataclasses
import datetime as dt
import itertools
import json

import pytest

from connectors.base import OutgoingMessage, TransientError
from connectors.mdn import Disposition, ImapSettings, connect, fetch_dispositions, parse_error_mail, parse_mdn
from connectors.mssante import MssanteConnector, mdn_token
from hub.models import MDN_CODE_LABELS
from tests.connectors.test_mssante import SENDER, settings_for, stored
from tests.imap_server import ImapServer, dovecot_available
from tests.servers import SmtpServer, TestCA

pytestmark = pytest.mark.skipif(
    not dovecot_available(), reason="Dovecot (Debian package dovecot-imapd) is not installed: no IMAP server"
)

KEY = "doc:2.25.1234:mssante:paul.martin@hopital.mssante.fr"
RECEIVER = "paul.martin@hopital.mssante.fr"
SENDER_DOMAIN = "cpts-livradois.mssante.fr"
NOW = dt.datetime(2026, 3, 30, 18, 0, tzinfo=dt.UTC)
_numbers = itertools.count(1)


@pytest.fixture
def mailbox(imap_server):
    imap_server.clear()
    return imap_server


def mdn(
    key: str = KEY,
    *,
    disposition: str = "processed",
    error: str | None = None,
    recipient: str = RECEIVER,
    date: str = "Mon, 30 Mar 2026 16:05:00 +0200",
) -> bytes:
    """An MDN as a receiver's software writes it (RFC 8098)."""
    fields = [
        "Reporting-UA: hopital.mssante.fr; LPS Cardio 4.2",
        f"Final-Recipient: rfc822; {recipient}",
        f"Original-Message-ID: <{mdn_token(key)}@{SENDER_DOMAIN}>",
        f"Disposition: automatic-action/MDN-sent-automatically; {disposition}",
    ]
    if error:
        fields.append(f"Error: {error}")
    return "\r\n".join(
        [
            f"From: {recipient}",
            f"To: hub-app@{SENDER_DOMAIN}",
            "Subject: =?utf-8?q?Accus=C3=A9_de_traitement?=",
            f"Date: {date}",
            f"Message-ID: <mdn-{next(_numbers)}@hopital.mssante.fr>",
            "MIME-Version: 1.0",
            # Folded, as receivers' mailers often write it.
            "Content-Type: multipart/report;",
            '\treport-type="disposition-notification"; boundary="mdn-boundary"',
            "",
            "--mdn-boundary",
            "Content-Type: text/plain; charset=utf-8",
            "",
            "Votre message a été traité par le logiciel du destinataire.",
            "--mdn-boundary",
            "Content-Type: message/disposition-notification",
            "",
            *fields,
            "",
            "--mdn-boundary--",
            "",
        ]
    ).encode()


def plain_mail(subject: str = "Question sur un rendez-vous") -> bytes:
    return (
        f"From: secretariat@hopital.mssante.fr\r\nTo: hub-app@{SENDER_DOMAIN}\r\nSubject: {subject}\r\n"
        "Date: Mon, 30 Mar 2026 16:00:00 +0200\r\nMessage-ID: <q1@hopital.mssante.fr>\r\n\r\nBonjour,\r\n"
    ).encode()


def delivery_status_notification() -> bytes:
    """A bounce (DSN) is a multipart/report too, but not a disposition: not for this reader."""
    return (
        b"From: MAILER-DAEMON@hopital.mssante.fr\r\nTo: hub-app@cpts-livradois.mssante.fr\r\nSubject: Undelivered\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nNon remis.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; x@hopital.mssante.fr\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n"
    )


def test_a_processed_mdn_acknowledges_the_message(mailbox):
    mailbox.deliver(mdn())

    [disposition] = fetch_dispositions(mailbox.settings(), now=NOW)

    assert disposition == Disposition(
        token=mdn_token(KEY),
        recipient=RECEIVER,
        acknowledged=True,
        code=None,
        text=None,
        received_at=dt.datetime(2026, 3, 30, 14, 5, tzinfo=dt.UTC),
    )


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        ("902^Patient inconnu", "902", "Patient inconnu"),
        ("903^", "903", MDN_CODE_LABELS["903"]),
        ("904^INS discordant avec le dossier local", "904", "INS discordant avec le dossier local"),
        ("905^", "905", "traits d'identité incomplets"),
        ("906^", "906", "autre erreur"),
        ("900^", "900", "demande de remplacement"),
        ("Erreur 901", "901", "demande de suppression"),
    ],
)
def test_a_refusal_carries_the_receivers_code(mailbox, error, code, text):
    mailbox.deliver(mdn(disposition="processed/error", error=error))

    [disposition] = fetch_dispositions(mailbox.settings(), now=NOW)

    assert (disposition.token, disposition.acknowledged) == (mdn_token(KEY), False)
    assert (disposition.code, disposition.text) == (code, text)


@pytest.mark.parametrize(
    ("disposition", "error", "text"),
    [
        ("failed", None, "Échec du traitement par le logiciel du destinataire"),
        ("deleted", None, "Message supprimé par le destinataire sans traitement"),
        ("failed", "Document illisible", "Document illisible"),
    ],
)
def test_a_failed_or_deleted_disposition_is_a_refusal_without_code(mailbox, disposition, error, text):
    mailbox.deliver(mdn(disposition=disposition, error=error))

    [read] = fetch_dispositions(mailbox.settings(), now=NOW)

    assert (read.acknowledged, read.code, read.text) == (False, None, text)


def test_other_mail_is_left_unread_and_each_mdn_is_read_once(mailbox):
    other_key = "doc:2.25.1234:mssante:jeanne.roux@medecin.mssante.fr"
    mailbox.deliver(
        plain_mail(),
        mdn(),
        delivery_status_notification(),
        mdn(
            other_key, disposition="processed/error", error="903^INS absent", recipient="jeanne.roux@medecin.mssante.fr"
        ),
    )

    first = fetch_dispositions(mailbox.settings(), now=NOW)
    second = fetch_dispositions(mailbox.settings(), now=NOW)

    assert [(d.token, d.acknowledged, d.code) for d in first] == [
        (mdn_token(KEY), True, None),
        (mdn_token(other_key), False, "903"),
    ]
    assert second == []
    assert mailbox.unseen() == 2  # the question and the bounce, for a person to read

    mailbox.deliver(mdn(other_key, recipient="jeanne.roux@medecin.mssante.fr"))
    [late] = fetch_dispositions(mailbox.settings(), now=NOW)
    assert (late.token, late.acknowledged) == (mdn_token(other_key), True)


def test_mdns_stay_unread_when_the_caller_fails_to_record_them(mailbox):
    mailbox.deliver(mdn())

    def crash(dispositions):
        assert len(dispositions) == 1
        raise RuntimeError("database unavailable")

    with pytest.raises(RuntimeError):
        fetch_dispositions(mailbox.settings(), on_fetched=crash, now=NOW)
    recorded = []
    fetch_dispositions(mailbox.settings(), on_fetched=recorded.extend, now=NOW)

    assert [d.token for d in recorded] == [mdn_token(KEY)]
    assert fetch_dispositions(mailbox.settings(), now=NOW) == []


def test_a_server_whose_certificate_does_not_verify_is_not_read(mailbox, tmp_path):
    mailbox.deliver(mdn())
    stranger = TestCA(tmp_path)
    with pytest.raises(TransientError, match="certificat"):
        fetch_dispositions(mailbox.settings(MSSANTE_CA_FILE=str(stranger.ca_file)), now=NOW)
    assert mailbox.unseen() == 1


def test_a_server_that_does_not_offer_starttls_never_sees_the_password(test_ca):
    with ImapServer(test_ca, starttls=False) as plain:
        with pytest.raises(TransientError, match="STARTTLS"):
            fetch_dispositions(plain.settings(), now=NOW)
        assert "Login: user=" not in plain.log() and "auth failed" not in plain.log()


def test_implicit_tls_is_verified_too(mailbox, tmp_path):
    """IMAPS (port 993 in production): TLS from the first byte, with the same certificate checks."""
    settings = ImapSettings.from_settings(mailbox.settings())
    assert (
        not settings.implicit_tls and ImapSettings.from_settings(mailbox.settings(MSSANTE_IMAP_PORT=993)).implicit_tls
    )
    imaps = dataclasses.replace(settings, port=mailbox.imaps_port, implicit_tls=True)
    imap = connect(imaps)
    try:
        assert imap.state == "AUTH"
    finally:
        imap.logout()
    stranger = dataclasses.replace(imaps, ca_file=str(TestCA(tmp_path).ca_file))
    with pytest.raises(TransientError, match="certificat"):
        connect(stranger)


def test_a_wrong_password_or_no_server_is_transient(mailbox):
    with pytest.raises(TransientError, match="IMAP"):
        fetch_dispositions(mailbox.settings(MSSANTE_IMAP_PASSWORD="wrong"), now=NOW)
    with pytest.raises(TransientError, match="injoignable"):
        fetch_dispositions(mailbox.settings(MSSANTE_IMAP_PORT=1), now=NOW)


def test_without_imap_settings_nothing_is_read():
    assert fetch_dispositions({"MSSANTE_IMAP_HOST": None}) == []


def test_the_code_may_sit_in_the_disposition_line_itself():
    raw = mdn(disposition="processed/Error: 902^Patient inconnu du LPS")
    disposition = parse_mdn(raw, now=NOW)
    assert (disposition.acknowledged, disposition.code, disposition.text) == (False, "902", "Patient inconnu du LPS")


def error_mail(subject: str, **headers: str) -> bytes:
    lines = [f"From: {RECEIVER}", f"To: hub-app@{SENDER_DOMAIN}", f"Subject: {subject}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    lines += ["Date: Mon, 30 Mar 2026 16:10:00 +0200", "Message-ID: <err@hopital.mssante.fr>", "", "Refus.", ""]
    return "\r\n".join(lines).encode()


def test_a_plain_mail_with_a_code_in_its_subject_is_read_and_other_mail_left(mailbox):
    original = f"<{mdn_token(KEY)}@{SENDER_DOMAIN}>"
    mailbox.deliver(
        error_mail("[LPS Cardio][903]", In_Reply_To=original),
        error_mail("Re: compte rendu", In_Reply_To=original),
        error_mail("[Erreur][905]"),  # answers nothing the hub can name: left for a person
    )

    [read] = fetch_dispositions(mailbox.settings(), now=NOW)

    assert (read.token, read.acknowledged, read.code, read.text) == (mdn_token(KEY), False, "903", "INS absent")
    assert read.recipient == RECEIVER and read.received_at == dt.datetime(2026, 3, 30, 14, 10, tzinfo=dt.UTC)
    assert mailbox.unseen() == 2


def test_a_plain_mail_names_its_message_by_references_or_subject():
    token = mdn_token(KEY)
    by_references = parse_error_mail(
        error_mail("[Erreur][902] Patient inconnu", References=f"<a@b.fr> <{token}@{SENDER_DOMAIN}>"), now=NOW
    )
    assert (by_references.token, by_references.alternatives) == (token, ("a",))
    assert (by_references.code, by_references.text) == ("902", "Patient inconnu")
    by_subject = parse_error_mail(error_mail(f"[{token}][906]"), now=NOW)
    assert (by_subject.token, by_subject.code, by_subject.text) == (token, "906", "autre erreur")
    assert parse_error_mail(mdn(), now=NOW) is None


def test_an_mdn_without_the_original_message_id_is_not_a_disposition():
    raw = mdn().replace(b"Original-Message-ID", b"X-Original-Message-ID")
    assert parse_mdn(raw, now=NOW) is None


def test_the_mdn_answers_a_message_the_connector_sent(mailbox, test_ca, tmp_path):
    """The round trip: the token the connector put in the Message-ID is the one the MDN gives back."""
    upload_dir = tmp_path / "uploads"
    package = stored(upload_dir)
    cert = test_ca.client_cert(tmp_path, "hub-app.cpts-livradois.fr")
    message = OutgoingMessage(
        id=1,
        idempotency_key=KEY,
        channel="mssante",
        recipient=RECEIVER,
        kind="document:85208-7",
        payload=json.dumps(package.to_payload()),
    )
    with SmtpServer(tls_context=test_ca.server_context(require_client_cert=True)) as smtp:
        connector = MssanteConnector.from_settings(settings_for(smtp, test_ca.ca_file, cert, upload_dir))
        connector.send(message)
        connector.close()
        [received] = smtp.messages
    assert received.parsed["Disposition-Notification-To"] == SENDER

    mailbox.deliver(mdn(KEY))
    [disposition] = fetch_dispositions(mailbox.settings(), now=NOW)
    assert f"<{disposition.token}@{SENDER_DOMAIN}>" == received.message_id
