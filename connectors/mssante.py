"""MSSanté: a clinical document to one secure mailbox, as the ANS volet "transmission de documents CDA par
messagerie sécurisée" describes it.

The hub sends from the structure's applicative mailbox (type APP), over SMTP submission with STARTTLS,
verifying the operator's certificate against the configured CA bundle and presenting the structure's
client certificate (S16). One e-mail per recipient mailbox: subject `XDM/1.0/DDM+<title>`, an
`IHE_XDM.zip` attachment and the readable PDF, `Disposition-Notification-To` so that the receiver answers
with an MDN (read back by connectors.mdn), and a Message-ID derived from the idempotency key, so that a
message re-sent after a crash is the same message (R2).

The documents are read from the hub's store and checked against the hash and size frozen in the outbox
payload: a document that changed, or vanished, after signing is never sent.
"""

import binascii
import functools
import hashlib
import random
import re
import sys
import uuid
from collections.abc import Mapping
from email import policy
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from pathlib import Path

from connectors.base import OutgoingMessage, PermanentError, Receipt
from connectors.email import SmtpTransport, message_id_for, message_token, single_address, tls_context
from connectors.xdm import build_xdm_zip
from hub.db import utcnow
from hub.documents.clinical import DocumentPackage
from hub.documents.store import read_stored

MSSANTE_DOMAIN = "mssante.fr"
SUBJECT_PREFIX = "XDM/1.0/DDM+"
# Headers unfolded up to RFC 5322's limit: receivers match the Message-ID as written, on one line.
MAX_LINE_LENGTH = 998
UNFOLDED = policy.SMTP.clone(max_line_length=MAX_LINE_LENGTH)
BODY = (
    "Bonjour,\n\n"
    "Vous trouverez ci-joint un document transmis par {sender} au format IHE XDM (fichier IHE_XDM.zip),\n"
    "accompagné de sa version lisible en PDF.\n\n"
    "--\n"
    "Message envoyé par la boîte applicative du hub de coordination de la CPTS.\n"
)


def mdn_token(idempotency_key: str) -> str:
    """The local part of the message's Message-ID: what an MDN's Original-Message-ID gives back, stored on
    each delivery to match the acknowledgement to it."""
    return message_token(idempotency_key)


def submission_uid_for(idempotency_key: str) -> str:
    """The XDS submission set's unique id, an OID under the UUID arc 2.25, stable for a message."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, idempotency_key).int}"


class MssanteConnector:
    channel = "mssante"

    def __init__(
        self,
        *,
        host: str,
        sender: str,
        upload_dir: str | Path,
        port: int = 587,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        timeout: float = 30.0,
    ):
        self.sender = sender
        self.domain = sender.rpartition("@")[2]
        self.upload_dir = Path(upload_dir)
        self.transport = SmtpTransport(
            host=host,
            port=port,
            tls=tls_context(ca_file, cert_file=cert_file, key_file=key_file),
            timeout=timeout,
        )

    @classmethod
    def from_settings(cls, settings: Mapping) -> "MssanteConnector | None":
        """None (the channel is "not configured") without a server, an applicative mailbox, the structure's
        certificate or the document store: documents then wait in the outbox."""
        upload_dir = settings.get("MSSANTE_UPLOAD_DIR") or settings.get("UPLOAD_DIR")
        required = ("MSSANTE_HOST", "MSSANTE_SENDER", "MSSANTE_CERT_FILE")
        if not upload_dir or not all(settings.get(key) for key in required):
            return None
        return cls(
            host=settings["MSSANTE_HOST"],
            port=int(settings.get("MSSANTE_PORT") or 587),
            sender=settings["MSSANTE_SENDER"],
            upload_dir=upload_dir,
            ca_file=settings.get("MSSANTE_CA_FILE") or None,
            cert_file=settings["MSSANTE_CERT_FILE"],
            key_file=settings.get("MSSANTE_KEY_FILE") or None,
        )

    def send(self, message: OutgoingMessage) -> Receipt:
        """One e-mail to the message's one mailbox; 4xx, network and TLS trouble are transient, a 5xx
        refusal, a mailbox outside MSSanté or a document that does not match its hash permanent."""
        recipient = mssante_address(message.recipient)
        message_id = message_id_for(message.idempotency_key, self.domain)
        self.transport.deliver(self.compose(message, message_id=message_id), sender=self.sender, recipient=recipient)
        return Receipt(id=message_id)

    def close(self) -> None:
        self.transport.close()

    def compose(self, message: OutgoingMessage, *, message_id: str | None = None) -> bytes:
        """The e-mail as it goes on the wire (CRLF line ends): the bytes the email package writes for the
        EmailMessage it used to build (UNFOLDED policy), composed directly — its header parsing, tree and
        generator were two thirds of the drain's own CPU per report. Anything uncommon (an address with a
        display name, a non-ASCII subject) still goes through the policy's folding, cached where it repeats."""
        package = _package(message)
        files = self.read_documents(package)
        document = package.document
        zipped = build_xdm_zip(
            package,
            files,
            submission_uid=submission_uid_for(message.idempotency_key),
            # The signing time, not the sending time: every attempt then carries the very same zip.
            now=document.created_at,
            intended_recipient=message.recipient,
        )
        text = _text_part(document.custodian.name)
        parts = [text, _attachment(zipped, "zip", "IHE_XDM.zip")]
        pdf = next((r for r in package.renderings if r.role == "pdf"), None)
        if pdf is not None:
            parts.append(_document_attachment(files[pdf.filename], "pdf", pdf.filename))
        boundary = _boundary(text)
        headers = [
            _header("From", self.sender),
            _header("To", message.recipient),
            _subject(f"{SUBJECT_PREFIX}{document.title}"),
            _header("Date", format_datetime(utcnow())),
            _header("Message-ID", message_id or message_id_for(message.idempotency_key, self.domain)),
            _header("Disposition-Notification-To", self.sender),
            b"MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n'.encode(),
        ]
        delimiter = f"\r\n--{boundary}\r\n".encode()
        return b"".join(
            [*headers, b"\r\n--", boundary.encode(), b"\r\n", delimiter.join(parts), f"\r\n--{boundary}--\r\n".encode()]
        )

    def read_documents(self, package: DocumentPackage) -> dict[str, bytes]:
        """The stored renderings by file name, each checked against the hash and size frozen at signing."""
        if not any(r.role == "cda" for r in package.renderings):
            raise PermanentError("document CDA absent du message : envoi impossible")
        files = {}
        for rendering in package.renderings:
            try:
                content = read_stored(self.upload_dir, rendering.sha256)
            except (OSError, ValueError):
                raise PermanentError(f"document {rendering.filename} introuvable dans le stockage") from None
            if len(content) != rendering.size or hashlib.sha256(content).hexdigest() != rendering.sha256:
                raise PermanentError(f"document {rendering.filename} altéré : empreinte ou taille différente")
            files[rendering.filename] = content
        return files


def mssante_address(recipient: str) -> str:
    """One mailbox of the MSSanté space (`…@*.mssante.fr`): a health document never leaves for plain e-mail."""
    address = single_address(recipient)
    domain = address.rpartition("@")[2].lower()
    if domain != MSSANTE_DOMAIN and not domain.endswith(f".{MSSANTE_DOMAIN}"):
        raise PermanentError("adresse hors de l'espace de confiance MSSanté : envoi refusé")
    return address


def _package(message: OutgoingMessage) -> DocumentPackage:
    try:
        return DocumentPackage.from_payload(message.data)
    except (KeyError, TypeError, ValueError):
        raise PermanentError("message MSSanté illisible : document absent ou incomplet") from None


# --- the wire form, as the email package writes it -----------------------------------------------------------

WIRE = UNFOLDED.clone(linesep="\r\n")
# Values the policy writes back unchanged (ASCII, no display name, comment or encoded word, short): written as is.
_PLAIN = {
    "From": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+"),
    "To": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+"),
    "Disposition-Notification-To": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+"),
    "Message-ID": re.compile(r"<[0-9a-f]{40}@[A-Za-z0-9.-]+>"),
    # email.utils.format_datetime's output, which the Date header re-renders identically.
    "Date": re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}"),
}
# RFC 2045 §6.8: encoded lines of at most 76 characters (the email package would cut at max_line_length, 996 under
# UNFOLDED, which strict relays may refuse or rewrite).
BASE64_LINE = 76


def _header(name: str, value: str) -> bytes:
    if len(value) < 900 and _PLAIN[name].fullmatch(value):
        return f"{name}: {value}\r\n".encode()
    return _folded(name, value)


@functools.lru_cache(maxsize=256)
def _subject(value: str) -> bytes:
    """Subjects repeat (a document type's title): folded once each."""
    return _folded("Subject", value)


def _folded(name: str, value: str) -> bytes:
    """The header as the generator writes it: parsed by the policy (which refuses CR and LF), then folded."""
    return WIRE.fold_binary(name, WIRE.header_store_parse(name, value)[1])


@functools.lru_cache(maxsize=64)
def _text_part(custodian: str) -> bytes:
    """The readable body part, the same for every message of a structure: composed by the email package once."""
    part = MIMEPart(policy=UNFOLDED)
    part.set_content(BODY.format(sender=custodian))
    return part.as_bytes(policy=WIRE)


def _attachment(content: bytes, subtype: str, filename: str) -> bytes:
    encoded = binascii.b2a_base64(content, newline=False)
    lines = [encoded[start : start + BASE64_LINE] for start in range(0, len(encoded), BASE64_LINE)]
    return _attachment_headers(subtype, filename) + b"\r\n".join(lines) + (b"\r\n" if lines else b"")


# The readable PDF's part is the same in each of a document's mailboxes (sent one after the other, one lane per
# report): kept for the last few documents, keyed by the content itself.
_document_attachment = functools.lru_cache(maxsize=8)(_attachment)


@functools.lru_cache(maxsize=256)
def _attachment_headers(subtype: str, filename: str) -> bytes:
    """What add_attachment writes before the data (MIME-Version included): the same for a given file name."""
    part = EmailMessage(policy=UNFOLDED)
    part.set_content(b"", maintype="application", subtype=subtype, filename=filename)
    return part.as_bytes(policy=WIRE)


def _boundary(text: bytes) -> str:
    """email.generator's boundary, drawn from `random` the same way; only the text part could contain it
    (base64 and the parts' headers cannot hold a line starting with `--`)."""
    boundary = "=" * 15 + f"{random.randrange(sys.maxsize):019d}=="  # noqa: S311 -- as email.generator; no secret
    candidate, counter = boundary, 0
    # The generator's pattern, compiled only when the boundary is in the text at all (compiling it was most of the
    # cost, the pattern being new each time).
    while f"--{candidate}".encode() in text and re.search(
        b"^--" + re.escape(candidate.encode()) + b"(--)?$", text, re.MULTILINE
    ):
        candidate = f"{boundary}.{counter}"
        counter += 1
    return candidate
