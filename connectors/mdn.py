"""The MSSanté acknowledgements read back: MDNs (RFC 8098) arriving in the applicative mailbox over IMAP.

A receiver's software answers each document message with a `multipart/report;
report-type=disposition-notification`: `…; processed` when it integrated the document, or an ANS code —
`processed/Error: 902^…` (unknown patient) up to `906` (other error), `900`/`901` (a request to replace or
delete) — or `failed` / `deleted`. Each MDN names the message it answers (Original-Message-ID), whose local
part is the token stored on the delivery (connectors.mssante.mdn_token). The code table is indicative, so the
three digits are read wherever they sit, not after a fixed prefix. An error may also come as a plain e-mail
whose subject holds the code in brackets (`[…][902]`), answering the message named in In-Reply-To or
References (or, failing those, in the subject).

The IMAP server is always reached over TLS (STARTTLS on 143, implicit TLS on 993), its certificate
verified against the configured CA bundle. MDNs read are flagged \\Seen, only after the caller has taken
them, so that a crash in between brings them back instead of losing them; other mail is left untouched.
"""

import contextlib
import datetime as dt
import email
import imaplib
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.utils import collapse_rfc2231_value, parseaddr, parsedate_to_datetime

from connectors.base import TransientError
from connectors.email import tls_context
from hub.db import utcnow
from hub.models import MDN_CODE_LABELS

IMPLICIT_TLS_PORT = 993
REFUSAL_LABELS = {
    "failed": "Échec du traitement par le logiciel du destinataire",
    "deleted": "Message supprimé par le destinataire sans traitement",
    "denied": "Accusé de traitement refusé par le destinataire",
}
ACKNOWLEDGING = ("processed", "displayed", "dispatched")
# Three digits 9xx standing alone, optionally followed by `^` and the receiver's text.
_CODE = re.compile(r"(?<![\w.])(9\d\d)(?![\w.])(?:\s*\^\s*([^\r\n]*))?")
_SUBJECT_CODE = re.compile(r"\[\s*(9\d\d)\s*\]")
_BRACKETED = re.compile(r"\[[^\]]*\]")
_MESSAGE_ID = re.compile(r"<([^<>@\s]+)@[^<>\s]+>")
_BARE_TOKEN = re.compile(r"(?<![0-9a-f])([0-9a-f]{40})(?![0-9a-f])")  # connectors.email.message_token


@dataclass(frozen=True)
class Disposition:
    """One receiver's answer to one message: `token` is the answered Message-ID's local part; a plain
    e-mail may name several messages (References), the others in `alternatives`."""

    token: str
    recipient: str | None
    acknowledged: bool
    code: str | None
    text: str | None
    received_at: dt.datetime
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    user: str
    password: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    timeout: float = 30.0
    implicit_tls: bool = False  # TLS from the first byte (IMAPS, port 993) rather than STARTTLS

    @classmethod
    def from_settings(cls, settings: Mapping) -> "ImapSettings | None":
        """None without a host, a user and a password: MDNs are then not read."""
        if not all(settings.get(key) for key in ("MSSANTE_IMAP_HOST", "MSSANTE_IMAP_USER", "MSSANTE_IMAP_PASSWORD")):
            return None
        port = int(settings.get("MSSANTE_IMAP_PORT") or 143)
        return cls(
            host=settings["MSSANTE_IMAP_HOST"],
            port=port,
            implicit_tls=port == IMPLICIT_TLS_PORT,
            user=settings["MSSANTE_IMAP_USER"],
            password=settings["MSSANTE_IMAP_PASSWORD"],
            ca_file=settings.get("MSSANTE_CA_FILE") or None,
            cert_file=settings.get("MSSANTE_CERT_FILE") or None,
            key_file=settings.get("MSSANTE_KEY_FILE") or None,
        )


def fetch_dispositions(
    settings: Mapping,
    *,
    on_fetched: Callable[[list[Disposition]], object] | None = None,
    now: dt.datetime | None = None,
) -> list[Disposition]:
    """The MDNs not yet read in INBOX, oldest first. `on_fetched` (the caller recording them) runs before
    they are flagged \\Seen: if it raises, they stay unread and come back next time. Unreachable or
    unverified server: TransientError. Nothing configured: an empty list."""
    config = ImapSettings.from_settings(settings)
    if config is None:
        return []
    imap = connect(config)
    try:
        uids, dispositions = _read_inbox(imap, now=now or utcnow())
        if on_fetched is not None:
            on_fetched(dispositions)
        if uids:
            _check(imap.uid("STORE", b",".join(uids).decode(), "+FLAGS.SILENT", r"(\Seen)"))
        return dispositions
    except (imaplib.IMAP4.error, OSError) as exc:
        raise TransientError(f"lecture des accusés MSSanté interrompue ({type(exc).__name__})") from None
    finally:
        _logout(imap)


def connect(config: ImapSettings) -> imaplib.IMAP4:
    """Connect, TLS with certificate checks (never in clear), then log in. Failures are transient."""
    context = tls_context(config.ca_file, cert_file=config.cert_file, key_file=config.key_file)
    try:
        imap: imaplib.IMAP4
        if config.implicit_tls:
            imap = imaplib.IMAP4_SSL(config.host, config.port, ssl_context=context, timeout=config.timeout)
        else:
            imap = imaplib.IMAP4(config.host, config.port, timeout=config.timeout)
    except ssl.SSLCertVerificationError:
        raise TransientError("certificat du serveur IMAP non vérifié : connexion refusée") from None
    except (imaplib.IMAP4.error, OSError) as exc:
        raise TransientError(f"serveur IMAP injoignable ({type(exc).__name__})") from None
    try:
        if not config.implicit_tls:
            if "STARTTLS" not in imap.capabilities:
                raise TransientError("le serveur IMAP ne propose pas STARTTLS : connexion refusée (pas de clair)")
            imap.starttls(ssl_context=context)
        imap.login(config.user, config.password)
    except TransientError:
        _logout(imap)
        raise
    except ssl.SSLCertVerificationError:
        _logout(imap)
        raise TransientError("certificat du serveur IMAP non vérifié : connexion refusée") from None
    except (imaplib.IMAP4.error, OSError) as exc:
        _logout(imap)
        raise TransientError(f"connexion IMAP refusée ({type(exc).__name__})") from None
    return imap


def _read_inbox(imap: imaplib.IMAP4, *, now: dt.datetime) -> tuple[list[bytes], list[Disposition]]:
    _check(imap.select("INBOX"))
    # The server picks the reports: mail for people, left unread, is not downloaded again at every run.
    # None is "no CHARSET", an argument imaplib skips; the stubs want every argument a str.
    # Plain e-mails whose subject holds a code in brackets come too; their body is only then looked at.
    criteria = ("UNSEEN", "OR", "HEADER", "Content-Type", '"disposition-notification"', "SUBJECT", '"[9"')
    data = _check(imap.uid("SEARCH", None, *criteria))  # type: ignore[arg-type]
    uids, dispositions = [], []
    for uid in data[0].split() if data and data[0] else []:
        # PEEK: reading does not flag the message; only MDNs are flagged, once the caller has them.
        raw = _message_bytes(_check(imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")))
        disposition = (parse_mdn(raw, now=now) or parse_error_mail(raw, now=now)) if raw else None
        if disposition is not None:
            uids.append(uid)
            dispositions.append(disposition)
    return uids, dispositions


def parse_mdn(raw: bytes, *, now: dt.datetime) -> Disposition | None:
    """The disposition an MDN reports, or None for anything else (or an MDN that names no message)."""
    message = email.message_from_bytes(raw, policy=policy.default)
    if message.get_content_type() != "multipart/report":
        return None
    # An RFC 2231 parameter (report-type*=utf-8''…) comes back as a (charset, language, value) tuple.
    if collapse_rfc2231_value(message.get_param("report-type") or "").lower() != "disposition-notification":
        return None
    fields = _report_fields(message)
    token = _token(fields.get("original-message-id", [""])[0])
    disposition = fields.get("disposition", [""])[0]
    if not token or not disposition:
        return None
    kind, modifiers = _disposition_type(disposition)
    code, text = _refusal_code([disposition, *fields.get("error", []), *fields.get("failure", [])])
    acknowledged = kind in ACKNOWLEDGING and "error" not in modifiers and code is None
    if not acknowledged and text is None:
        text = _first(fields, "error", "failure") or REFUSAL_LABELS.get(kind, "Refusé par le destinataire")
    return Disposition(
        token=token,
        recipient=_address(_first(fields, "final-recipient", "original-recipient")),
        acknowledged=acknowledged,
        code=code,
        text=None if acknowledged else text,
        received_at=_received_at(message, now),
    )


def parse_error_mail(raw: bytes, *, now: dt.datetime) -> Disposition | None:
    """A plain e-mail whose subject holds an ANS code in brackets (`[…][903]`), answering a message the hub
    sent; None for any other mail (left for a person to read)."""
    message = email.message_from_bytes(raw, policy=policy.default)
    if message.get_content_type() == "multipart/report":
        return None
    subject = str(message.get("Subject") or "")
    found = _SUBJECT_CODE.findall(subject)
    if not found:
        return None
    code = found[-1]
    tokens = _answered_tokens(message, subject)
    if not tokens:
        return None
    text = " ".join(_MESSAGE_ID.sub(" ", _BRACKETED.sub(" ", subject)).split()).strip(" :-–")
    return Disposition(
        token=tokens[0],
        recipient=_address(f"rfc822; {message.get('From') or ''}"),
        acknowledged=False,
        code=code,
        text=text or MDN_CODE_LABELS.get(code),
        received_at=_received_at(message, now),
        alternatives=tuple(tokens[1:]),
    )


def _answered_tokens(message: EmailMessage, subject: str) -> list[str]:
    """The local parts of the Message-IDs the mail answers, In-Reply-To first, then References (newest
    first), then any the subject quotes."""
    tokens: list[str] = []
    references = _MESSAGE_ID.findall(str(message.get("References") or ""))
    for token in [
        *_MESSAGE_ID.findall(str(message.get("In-Reply-To") or "")),
        *reversed(references),
        *_MESSAGE_ID.findall(subject),
        *_BARE_TOKEN.findall(subject),
    ]:
        if token not in tokens:
            tokens.append(token)
    return tokens


def _report_fields(message: EmailMessage) -> dict[str, list[str]]:
    report = next((p for p in message.walk() if p.get_content_type() == "message/disposition-notification"), None)
    if report is None:
        return {}
    payload = report.get_payload()
    block = payload[0] if isinstance(payload, list) and payload else None
    fields: dict[str, list[str]] = {}
    for name, value in block.items() if isinstance(block, Message) else ():
        fields.setdefault(name.lower(), []).append(str(value).strip())
    return fields


def _disposition_type(value: str) -> tuple[str, list[str]]:
    """`automatic-action/MDN-sent-automatically; processed/error` → ("processed", ["error"])."""
    _, _, outcome = value.partition(";")
    kind, _, modifiers = outcome.strip().partition("/")
    return kind.strip().lower(), [m.strip().lower().partition(":")[0] for m in modifiers.split(",") if m.strip()]


def _refusal_code(values: list[str]) -> tuple[str | None, str | None]:
    for value in values:
        found = _CODE.search(value)
        if found:
            code, text = found.group(1), (found.group(2) or "").strip()
            return code, text or MDN_CODE_LABELS.get(code)
    return None, None


def _token(message_id: str) -> str | None:
    local, at, _ = message_id.strip().strip("<>").partition("@")
    return local if at and local else None


def _address(value: str | None) -> str | None:
    if not value:
        return None
    _, _, address = value.partition(";")
    return parseaddr(address.strip())[1] or None


def _first(fields: dict[str, list[str]], *names: str) -> str | None:
    return next((fields[name][0] for name in names if fields.get(name)), None)


def _received_at(message: EmailMessage, now: dt.datetime) -> dt.datetime:
    try:
        when = parsedate_to_datetime(message["Date"]) if message["Date"] else None
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        return now
    return when.astimezone(dt.UTC)


def _message_bytes(data: list) -> bytes | None:
    return next((item[1] for item in data if isinstance(item, tuple) and len(item) == 2), None)


def _check(response: tuple[str, list]) -> list:
    status, data = response
    if status != "OK":
        raise imaplib.IMAP4.error(f"réponse IMAP {status}")
    return data


def _logout(imap: imaplib.IMAP4) -> None:
    with contextlib.suppress(imaplib.IMAP4.error, OSError):
        imap.logout()
