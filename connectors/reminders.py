"""Patient reminders by SMS, through an HTTP provider API (a generic JSON one: POST `SMS_API_URL` with a
Bearer token, body `{"to", "text", "sender", "client_ref"}`, answer `{"id": …}`). E-mail reminders go
through connectors.email; both say the same thing (`notice_text`): a date, a time, nothing about health.

Numbers are sent in E.164: French numbers written `06 12 34 56 78` become `+33612345678`, overseas mobiles
(0690…, 0692…) take their own country code. A number that cannot take an SMS is a permanent error.
`client_ref` is a hash of the outbox idempotency key, the same on every attempt, so a provider that dedupes
on it sends a re-sent reminder once (R2), and the key itself does not travel to a third party.
"""

import hashlib
import re
from collections.abc import Mapping

from connectors.base import OutgoingMessage, PermanentError, Receipt
from connectors.email import notice_text
from connectors.https_client import https_session, post, raise_for_status, require_https
from connectors.targets import allows_private_hosts

WHAT = "fournisseur SMS"
DEFAULT_SENDER = "CPTS"
# Overseas mobiles are written 06 9x / 06 39 in France but live under their own country codes.
OVERSEAS_MOBILE_PREFIXES = {
    "0639": "262",  # Mayotte
    "0690": "590",  # Guadeloupe, Saint-Martin, Saint-Barthélemy
    "0691": "590",
    "0692": "262",  # La Réunion
    "0693": "262",
    "0694": "594",  # Guyane
    "0696": "596",  # Martinique
    "0697": "596",
}
_SEPARATORS = re.compile(r"[\s.\-/()]")


def e164(phone: str) -> str:
    """A French number in E.164, or PermanentError. Mobiles only: a landline (01…05, 09) takes no SMS."""
    digits = _SEPARATORS.sub("", phone or "")
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if digits.startswith("+33"):
        digits = "0" + digits[3:].removeprefix("0")  # "+33 (0)6…" is written too
    if re.fullmatch(r"\+[1-9]\d{7,14}", digits) and not digits.startswith("+33"):
        return digits  # already international, outside metropolitan France: the provider knows its rules
    if not re.fullmatch(r"0[1-9]\d{8}", digits):
        raise PermanentError("numéro de téléphone invalide : SMS impossible")
    overseas = OVERSEAS_MOBILE_PREFIXES.get(digits[:4])
    if overseas:
        return f"+{overseas}{digits[1:]}"
    if digits[1] not in "67":
        raise PermanentError("numéro de téléphone fixe : SMS impossible")
    return "+33" + digits[1:]


def sms_text(message: OutgoingMessage, *, base_url: str | None) -> str:
    """The notification's text on one line: SMS have no paragraphs."""
    return " ".join(notice_text(message.kind, message.data, base_url=base_url).split())


def client_ref(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


class SmsConnector:
    channel = "sms"

    def __init__(
        self,
        *,
        url: str,
        token: str,
        sender: str = DEFAULT_SENDER,
        ca_file: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        allow_private_hosts: bool = False,
    ):
        self.url = require_https(url, "SMS_API_URL")
        self.sender = sender
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout
        self._session = https_session(ca_file=ca_file, allow_private_hosts=allow_private_hosts)
        self._session.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_config(cls, config: Mapping) -> "SmsConnector | None":
        """None when SMS_API_URL or SMS_API_TOKEN is missing: SMS then wait in the outbox."""
        if not config.get("SMS_API_URL") or not config.get("SMS_API_TOKEN"):
            return None
        return cls(
            url=config["SMS_API_URL"],
            token=config["SMS_API_TOKEN"],
            sender=config.get("SMS_SENDER") or DEFAULT_SENDER,
            ca_file=config.get("SMS_CA_FILE") or None,
            base_url=config.get("BASE_URL") or None,
            timeout=float(config.get("SMS_TIMEOUT_SECONDS") or 30),
            allow_private_hosts=allows_private_hosts(config),
        )

    def send(self, message: OutgoingMessage) -> Receipt:
        """One SMS to the message's one number; the receipt is the provider's message id."""
        body = {
            "to": e164(message.recipient),
            "text": sms_text(message, base_url=self.base_url),
            "sender": self.sender,
            "client_ref": client_ref(message.idempotency_key),
        }
        response = post(self._session, self.url, what=WHAT, timeout=self.timeout, json=body)
        raise_for_status(response, what=WHAT)
        return Receipt(id=_provider_id(response) or body["client_ref"])

    def close(self) -> None:
        self._session.close()


def _provider_id(response) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    value = answer.get("id") or answer.get("message_id") or answer.get("messageId")
    return str(value) if value else None
