"""Plain e-mail over SMTP for notifications that carry no health data (reminders, escalations, offers).

TLS is never optional once configured: with SMTP_STARTTLS on, a server that does not offer STARTTLS,
or whose certificate does not verify against the configured CA bundle, gets nothing (S16). Those
failures are the transport's, not the message's, so they are transient: the queue waits for the
transport to be fixed and drains afterwards, instead of every message going dead at once (R14).
"""

import base64
import datetime as dt
import functools
import hashlib
import smtplib
import ssl
import threading
from collections.abc import Mapping
from email.header import Header
from email.utils import format_datetime, parseaddr

from connectors.base import OutgoingMessage, PermanentError, Receipt, TransientError
from hub.db import utcnow
from hub.formatting import DAYS, french_date

FALLBACK_DOMAIN = "cpts-hub.invalid"
SIGNATURE = "\n\n--\nMessage automatique du hub de coordination de la CPTS. Merci de ne pas y répondre.\n"


def message_token(idempotency_key: str) -> str:
    """The Message-ID's local part: hashed, so that the key's contents do not travel."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


def message_id_for(idempotency_key: str, domain: str) -> str:
    """A stable Message-ID: the same outbox message re-sent after a crash carries the same id, so the
    receiver can recognise it (R2)."""
    return f"<{message_token(idempotency_key)}@{domain}>"


def tls_context(ca_file: str | None, *, cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
    """Certificates are always verified, against the configured bundle or the system's; a client
    certificate is presented when one is configured."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context


class SmtpTransport:
    """SMTP connections kept open between messages, opened with STARTTLS and certificate checks. Each
    message takes an idle connection or opens one, and gives it back once sent, so that several threads
    send at once on as many connections; `close` quits every idle one, and the busy ones when they are given back.

    4xx replies and network or TLS trouble are transient, 5xx replies about the message or its recipient
    permanent. Where the server offers PIPELINING (RFC 2920) the envelope and DATA go in one write."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ):
        if username and tls is None:
            raise ValueError("SMTP_USERNAME needs SMTP_STARTTLS: credentials never travel in clear")
        self.host, self.port, self.tls = host, port, tls
        self.username, self.password, self.timeout = username, password, timeout
        self._idle: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        # Counts the calls to close(): a connection taken before one is closed when given back, not kept by a
        # transport that may never be closed again (a connector the registry replaced while it was sending).
        self._closings = 0

    def deliver(self, data: bytes, *, sender: str, recipient: str) -> None:
        """Send one e-mail, in its wire form with CRLF line ends, to one recipient."""
        closings = self._closings
        for attempt in (1, 2):
            smtp, reused = self._checkout() if attempt == 1 else (self._connect(), False)
            try:
                _transmit(smtp, data, sender, recipient)
            except _Unsent:
                # The connection was gone before the message left (a kept connection closed by the server
                # while idle): nothing was sent, so one fresh attempt cannot deliver it twice.
                smtp.close()
                if reused and attempt == 1:
                    continue
                raise TransientError("le serveur SMTP a coupé la connexion") from None
            except _Refused as refusal:
                if smtp.sock is not None:
                    self._checkin(smtp, closings)  # the transaction was reset: the connection serves the next message
                raise _by_code(refusal.code, refusal.reply, refusal.what) from None
            except (smtplib.SMTPException, OSError) as exc:
                # Cut during the data: the server may or may not have taken it. The row comes back after its
                # backoff with the same Message-ID (R2), by which the receiver recognises a duplicate.
                smtp.close()
                raise TransientError(f"erreur réseau SMTP ({type(exc).__name__})") from None
            self._checkin(smtp, closings)
            return

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self._closings += 1
        for smtp in idle:
            _quit(smtp)

    @property
    def open_connections(self) -> int:
        """Idle connections kept for the next messages."""
        return len(self._idle)

    def _checkout(self) -> tuple[smtplib.SMTP, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _checkin(self, smtp: smtplib.SMTP, closings: int) -> None:
        with self._lock:
            if closings == self._closings:
                self._idle.append(smtp)
                return
        _quit(smtp)

    def _connect(self) -> smtplib.SMTP:
        """Connect, then STARTTLS with certificate checks, then log in. Any failure here is the
        transport's: transient."""
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"serveur SMTP injoignable ({type(exc).__name__})") from None
        try:
            smtp.ehlo()
            if self.tls is not None:
                if not smtp.has_extn("starttls"):
                    raise TransientError(
                        "le serveur SMTP ne propose pas STARTTLS : envoi refusé (pas d'envoi en clair)"
                    )
                smtp.starttls(context=self.tls)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
        except TransientError:
            smtp.close()
            raise
        except ssl.SSLCertVerificationError:
            smtp.close()
            raise TransientError("certificat du serveur SMTP non vérifié : envoi refusé") from None
        except smtplib.SMTPResponseException as exc:
            smtp.close()
            raise TransientError(f"connexion SMTP refusée ({exc.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise TransientError(f"échec de la connexion SMTP ({type(exc).__name__})") from None
        return smtp


class _Unsent(Exception):
    """The connection failed before any of the message's data was written."""


class _Refused(Exception):
    """The server refused the sender, the recipient or the message; the transaction was reset."""

    def __init__(self, code: int, reply: bytes, what: str):
        super().__init__(code, reply, what)
        self.code, self.reply, self.what = code, reply, what


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _transmit(smtp: smtplib.SMTP, data: bytes, sender: str, recipient: str) -> None:
    """One SMTP transaction: MAIL, RCPT, DATA, the message. Raises _Refused on a refusal (the transaction
    reset) and _Unsent when the connection turns out closed before the message's data left."""
    options = "" if sender.isascii() and recipient.isascii() else " SMTPUTF8"
    if options and not smtp.has_extn("smtputf8"):
        raise _Refused(553, b"SMTPUTF8", "adresse internationale non prise en charge")
    envelope = [f"MAIL FROM:{smtplib.quoteaddr(sender)}{options}", f"RCPT TO:{smtplib.quoteaddr(recipient)}", "DATA"]
    try:
        if smtp.has_extn("pipelining"):
            smtp.send("".join(line + "\r\n" for line in envelope))
            replies = [smtp.getreply() for _ in envelope]
        else:
            replies = []
            for line, expected in zip(envelope, ((250,), (250, 251), (354,)), strict=True):
                smtp.putcmd(line)
                replies.append(smtp.getreply())
                if replies[-1][0] not in expected:
                    break
    except smtplib.SMTPServerDisconnected:
        raise _Unsent() from None
    for (code, reply), expected, what in zip(replies, ((250,), (250, 251), (354,)), _REFUSALS, strict=False):
        if code not in expected:
            if replies[-1][0] == 354:
                # A server that opened DATA after refusing the envelope (RFC 2920 says it must not): an empty
                # message ends it, for no accepted recipient.
                smtp.send(b".\r\n")
                smtp.getreply()
            _reset(smtp)
            raise _Refused(code, reply, what)
    smtp.send(_quote_periods(data) + b"\r\n.\r\n")
    code, reply = smtp.getreply()
    if code != 250:
        _reset(smtp)
        raise _Refused(code, reply, "message refusé")


def _reset(smtp: smtplib.SMTP) -> None:
    """RSET after a refusal; a connection that cannot take it is closed (and not kept)."""
    try:
        smtp.rset()
    except (smtplib.SMTPException, OSError):
        smtp.close()


_REFUSALS = ("expéditeur refusé", "destinataire refusé", "message refusé")


def _quote_periods(data: bytes) -> bytes:
    data = data if data.endswith(b"\r\n") else data + b"\r\n"
    body = data[:-2]
    body = body.replace(b"\r\n.", b"\r\n..")
    return b"." + body if body.startswith(b".") else body


class EmailConnector:
    channel = "email"
    # Several dispatcher threads may call send at once: each takes its own connection (SmtpTransport).
    sends_concurrently = True

    def __init__(
        self,
        *,
        host: str,
        sender: str,
        port: int = 587,
        starttls: bool = True,
        ca_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
    ):
        self.sender = sender
        self.base_url = base_url.rstrip("/") if base_url else None
        self.domain = sender.rpartition("@")[2] or FALLBACK_DOMAIN
        self.transport = SmtpTransport(
            host=host,
            port=port,
            tls=tls_context(ca_file) if starttls else None,
            username=username,
            password=password,
            timeout=timeout,
        )

    @classmethod
    def from_config(cls, config: Mapping) -> "EmailConnector | None":
        """None when SMTP_HOST or SMTP_FROM is missing: the channel is then "not configured"."""
        if not config.get("SMTP_HOST") or not config.get("SMTP_FROM"):
            return None
        return cls(
            host=config["SMTP_HOST"],
            port=int(config.get("SMTP_PORT") or 587),
            sender=config["SMTP_FROM"],
            starttls=bool(int(config.get("SMTP_STARTTLS", 1))),
            ca_file=config.get("SMTP_CA_FILE") or None,
            username=config.get("SMTP_USERNAME") or None,
            password=config.get("SMTP_PASSWORD") or None,
            base_url=config.get("BASE_URL") or None,
            timeout=float(config.get("SMTP_TIMEOUT_SECONDS") or 30),
        )

    def send(self, message: OutgoingMessage) -> Receipt:
        """One e-mail to the message's one recipient."""
        recipient = single_address(message.recipient)
        message_id = message_id_for(message.idempotency_key, self.domain)
        self.transport.deliver(self.compose(message, message_id=message_id), sender=self.sender, recipient=recipient)
        return Receipt(id=message_id)

    def close(self) -> None:
        self.transport.close()

    # --- content ------------------------------------------------------------------------------------------

    def compose(self, message: OutgoingMessage, *, message_id: str | None = None) -> bytes:
        """The e-mail for one outbox message as it goes on the wire: French, and nothing about health — a
        date, a time and a link to the hub, behind login."""
        subject, body = render(message.kind, message.data, base_url=self.base_url)
        # Written out rather than built with the email package, whose header handling and generator were most
        # of the dispatcher's own time per e-mail (P4). The same MIME shape as email.mime.text.MIMEText.
        headers = [
            *_TEXT_PLAIN_UTF8,
            b"From: " + self.sender.encode(),
            b"To: " + message.recipient.encode(),  # raw UTF-8 only with SMTPUTF8 (RFC 6532): see _transmit
            _subject_line(subject),
            b"Date: " + format_datetime(utcnow()).encode(),
            b"Message-ID: " + (message_id or message_id_for(message.idempotency_key, self.domain)).encode(),
            b"Auto-Submitted: auto-generated",
        ]
        text = base64.encodebytes((body + SIGNATURE).encode()).replace(b"\n", b"\r\n")
        return b"\r\n".join(headers) + b"\r\n\r\n" + text


_TEXT_PLAIN_UTF8 = (
    b'Content-Type: text/plain; charset="utf-8"',
    b"MIME-Version: 1.0",
    b"Content-Transfer-Encoding: base64",
)


@functools.cache
def _subject_line(subject: str) -> bytes:
    """`Subject:` as an RFC 2047 encoded word, folded: subjects are a fixed table, so encoded once each."""
    return b"Subject: " + Header(subject, "utf-8", header_name="Subject").encode(linesep="\r\n").encode()


# Notifications whose text is fixed: (subject, text). Ids only in the payload, nothing about the patient.
NOTICES = {
    "gp_patient_proposed": (
        "Patient sans médecin traitant proposé",
        "La coordination de la CPTS vous propose de devenir le médecin traitant d'un patient qui n'en a pas. "
        "Répondez depuis votre bureau (« Patients proposés »).",
    ),
    "referral_accepted": (
        "Adressage accepté",
        "Votre adressage a été accepté par la coordination ; il sera programmé.",
    ),
    "referral_rejected": (
        "Adressage refusé",
        "Votre adressage a été refusé par la coordination ; le motif est sur le hub.",
    ),
    "referral_scheduled": ("Adressage programmé", "Votre adressage est programmé : la date est sur le hub."),
    "referral_cancelled": ("Adressage annulé", "Un adressage a été annulé."),
    "referral_done": ("Adressage réalisé", "La consultation de votre adressage a eu lieu."),
    "teleexpertise_received": (
        "Demande de téléexpertise",
        "Une demande de téléexpertise vous attend dans « Téléexpertises reçues ».",
    ),
    "teleexpertise_assigned": (
        "Téléexpertise prise en charge",
        "Votre demande de téléexpertise a été prise en charge par un expert.",
    ),
    "teleexpertise_declined": (
        "Téléexpertise déclinée",
        "Votre demande de téléexpertise a été déclinée ; le motif est sur le hub.",
    ),
    # Queued at the signature, before the worker renders the answer's PDF: the document follows within seconds.
    "teleexpertise_answered": (
        "Réponse de téléexpertise",
        "L'expert a signé sa réponse à votre demande de téléexpertise ; son document est mis en forme et se lit sur "
        "le hub dans quelques instants.",
    ),
    "teleexpertise_expired": (
        "Téléexpertise expirée",
        "Une demande de téléexpertise a dépassé son délai de réponse sans réponse.",
    ),
}

SUBJECTS = {
    "reminder": "Rappel de rendez-vous",
    "escalation": "Visite non confirmée à moins de 48 h",
    "visit_offered": "Visite d'accompagnement proposée",
    "visit_declined": "Visite refusée",
    "appointment_cancelled": "Rendez-vous annulé",
    "report_overdue": "Compte rendu en retard",
    "visit_unassigned": "Visite sans IDEL accompagnant·e",
    "serious_adverse_event": "Événement indésirable grave déclaré",
    "satisfaction_survey": "Votre avis sur votre rendez-vous à distance",
    "appointment_postponed": "Rendez-vous reporté",
    "video_link": "Votre lien de téléconsultation",
    **{kind: subject for kind, (subject, _text) in NOTICES.items()},
}
DEFAULT_SUBJECT = "Nouveau message du hub de la CPTS"


def render(kind: str, data: Mapping, *, base_url: str | None) -> tuple[str, str]:
    """Subject and body for a message kind. The payload holds ids, a local date and time, a recipient
    kind: nothing else is ever written into an e-mail."""
    return SUBJECTS.get(kind, DEFAULT_SUBJECT), "Bonjour,\n\n" + notice_text(kind, data, base_url=base_url)


def notice_text(kind: str, data: Mapping, *, base_url: str | None) -> str:
    """What a notification says, by e-mail or SMS (connectors.reminders): a date, a time and, for a
    professional, a link to the hub behind login. A patient has no account on the hub: no link for them."""
    when = _when(data)
    for_patient = data.get("recipient_kind") == "patient"
    link = "" if for_patient else _link(base_url)
    if kind == "reminder":
        text = (
            f"Rappel : vous avez un rendez-vous {when}." if when else "Rappel : vous avez un rendez-vous prochainement."
        )
        if for_patient:
            text += " Pour toute question, contactez votre professionnel de santé."
        return text + link
    if kind == "escalation":
        return f"Un rendez-vous {when} n'est toujours pas confirmé par l'IDEL accompagnant·e." + link
    if kind == "visit_offered":
        return "Une visite d'accompagnement vous est proposée. Répondez depuis « Mes visites »." + link
    if kind == "visit_declined":
        return "Une visite d'accompagnement a été refusée ; elle revient à la coordination." + link
    if kind == "appointment_cancelled":
        return (f"Un rendez-vous {when} a été annulé." if when else "Un rendez-vous a été annulé.") + link
    if kind in NOTICES:
        return NOTICES[kind][1] + link
    if kind == "visit_unassigned":
        return "Aucune IDEL n'a accepté une visite d'accompagnement : elle attend la coordination." + link
    if kind == "serious_adverse_event":  # an alert: straight to the coordination's list of incidents
        text = "Un événement indésirable grave a été déclaré sur une séance, voir le hub."
        return text + _link(base_url, "incidents")
    if kind == "satisfaction_survey":  # the patient's own single-use link: the one link a patient gets
        return (
            "Votre rendez-vous à distance a eu lieu. Donnez-nous votre avis en quelques questions, sans compte :"
            f" {base_url or ''}/enquete/{data['survey_token']} (lien personnel, valable 14 jours)."
        )
    if kind == "appointment_postponed":  # the performer was absent (workflows.attendance): nothing else is said
        text = f"Le rendez-vous {when} n'a pas pu avoir lieu" if when else "Un rendez-vous n'a pas pu avoir lieu"
        return text + " : il est reporté, une nouvelle date vous sera proposée." + link
    if kind == "video_link":  # the patient's link to the hub, which opens the video room around the session only
        return (
            f"Votre téléconsultation {when} : rejoignez-la par ce lien personnel {base_url or ''}/visio/"
            f"{data['video_token']} (il s'ouvre {data['opens_minutes']} minutes avant l'heure)."
        )
    if kind == "report_overdue":
        late = "non signé, non mis en forme ou non envoyé dans son délai"
        return f"Un compte rendu de télémédecine est en retard ({late})." + link
    return "Vous avez un nouveau message." + link


def _when(data: Mapping) -> str:
    """`le lundi 30 mars 2026 à 14 h 00`: a date, never "demain", since a retried message may arrive late."""
    if not data.get("local_date"):
        return ""
    day = dt.date.fromisoformat(data["local_date"])
    text = f"le {DAYS[day.weekday()]} {french_date(day)}"
    if data.get("local_time"):
        hour, _, minute = data["local_time"].partition(":")
        text += f" à {int(hour)} h {minute or '00'}"
    return text


def _link(base_url: str | None, path: str = "") -> str:
    if not base_url:
        return "\n\nLes détails sont sur le hub de la CPTS, après connexion."
    return f"\n\nDétails sur le hub (après connexion) : {base_url}/{path}"


def single_address(recipient: str) -> str:
    _, address = parseaddr(recipient or "")
    if not address or address.count("@") != 1 or any(c in recipient for c in ",;\r\n"):
        raise PermanentError("adresse du destinataire invalide")
    return address


def _by_code(code: int, reply: bytes | str, what: str) -> TransientError | PermanentError:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    detail = f"{what} par le serveur SMTP : {code} {text}"[:300]
    return PermanentError(detail) if 500 <= code < 600 else TransientError(detail)
