"""Webhooks: the message's payload as JSON, POSTed over HTTPS to the recipient URL, signed per Standard
Webhooks (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp` and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`).

The id is the outbox message's idempotency key, the same on every attempt: a receiver that keeps the ids it
has seen gets one effect from a message re-sent after a crash (R2). The payload holds ids and event names,
never health data. Receivers check a message with `verify_signature`.
"""

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from connectors.base import OutgoingMessage, PermanentError, Receipt
from connectors.https_client import https_session, post, raise_for_status, require_https
from connectors.targets import allows_private_hosts

WHAT = "destinataire du webhook"
SECRET_PREFIX = "whsec_"  # noqa: S105 -- the format's prefix, not a secret
DEFAULT_TOLERANCE = 300  # seconds either side of the receiver's clock: an old captured message is refused


class InvalidSignature(Exception):
    """The message was not signed with this secret, or too long ago (a replay)."""


def decode_secret(secret: str) -> bytes:
    """`whsec_<base64>` → the HMAC key. A bad secret is a configuration error, raised at start-up."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("WEBHOOK_SECRET doit être de la forme whsec_<base64>") from None
    if len(key) < 16:
        raise ValueError("WEBHOOK_SECRET est trop court : au moins 16 octets aléatoires (24 conseillés)")
    return key


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """For receivers: return if `body` was signed with `secret` less than `tolerance` seconds from `now`,
    raise InvalidSignature otherwise. Header names are matched without regard to case; a header may hold
    several space-separated signatures (during a secret rotation), one valid is enough."""
    lowered = {name.lower(): value for name, value in headers.items()}
    webhook_id, stamp = lowered.get("webhook-id"), lowered.get("webhook-timestamp")
    signatures = (lowered.get("webhook-signature") or "").split()
    if not webhook_id or not stamp or not signatures:
        raise InvalidSignature("en-têtes webhook-id, webhook-timestamp ou webhook-signature absents")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp invalide") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature("message trop ancien ou daté du futur")
    expected = sign(decode_secret(secret), webhook_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise InvalidSignature("signature invalide")


class WebhookConnector:
    channel = "webhook"

    def __init__(
        self,
        *,
        secret: str,
        ca_file: str | None = None,
        timeout: float = 30.0,
        clock=time.time,
        allow_private_hosts: bool = False,
    ):
        self._key = decode_secret(secret)
        self.timeout = timeout
        self._clock = clock
        self._session = https_session(ca_file=ca_file, allow_private_hosts=allow_private_hosts)

    @classmethod
    def from_config(cls, config: Mapping) -> "WebhookConnector | None":
        """None without WEBHOOK_SECRET: the hub sends no unsigned webhook, so they wait in the outbox."""
        if not config.get("WEBHOOK_SECRET"):
            return None
        return cls(
            secret=config["WEBHOOK_SECRET"],
            ca_file=config.get("WEBHOOK_CA_FILE") or None,
            timeout=float(config.get("WEBHOOK_TIMEOUT_SECONDS") or 30),
            allow_private_hosts=allows_private_hosts(config),
        )

    def send(self, message: OutgoingMessage) -> Receipt:
        """2xx: delivered. 410 and other 4xx (but 408, 429): permanent. 5xx and network trouble: transient."""
        try:
            url = require_https(message.recipient, "l'adresse du webhook")
        except ValueError as exc:
            raise PermanentError(str(exc)) from None
        body = json.dumps(message.data, ensure_ascii=False, separators=(",", ":")).encode()
        response = post(
            self._session, url, what=WHAT, timeout=self.timeout, data=body, headers=self.headers(message, body)
        )
        raise_for_status(response, what=WHAT)
        return Receipt(id=f"{message.idempotency_key} ({response.status_code})")

    def headers(self, message: OutgoingMessage, body: bytes) -> dict[str, str]:
        # The timestamp is the send time's, not the message's: a receiver refuses old ones (replays).
        timestamp = int(self._clock())
        return {
            "Content-Type": "application/json",
            "webhook-id": message.idempotency_key,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, message.idempotency_key, timestamp, body),
        }

    def close(self) -> None:
        self._session.close()
