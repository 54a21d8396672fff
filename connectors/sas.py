"""The Service d'accès aux soins (SAS): after a booking the SAS made (an appointment whose `source` is "sas"),
each status it must know (booked, fulfilled, noshow, cancelled) is POSTed to it as a FHIR Appointment
(application/fhir+json), through the outbox (workflows.sas queues one message per status, with the key
`sas:<appointment>:<status>`; the dispatcher retries it until a 2xx, and sends it once).

The SAS URL is the server's (`SAS_URL`) or a CPTS's own (its connector settings, merged over the server's by
connectors.registry); the platform's token (`SAS_API_TOKEN`, server configuration only) is dropped by the
registry when a CPTS points the channel elsewhere, so that it never reaches an address a CPTS chose. The
message's recipient is a label for the outbox page; the connector sends to its URL. The outbox key travels as
`X-Idempotency-Key`, the same on every attempt, so that the SAS gets one effect from a re-sent message."""

import json
from collections.abc import Mapping

from connectors.base import OutgoingMessage, Receipt
from connectors.https_client import https_session, post, raise_for_status, require_https
from connectors.targets import allows_private_hosts

WHAT = "Service d'accès aux soins (SAS)"
MEDIA_TYPE = "application/fhir+json"


class SasConnector:
    channel = "sas"

    def __init__(
        self,
        *,
        url: str,
        token: str | None,
        ca_file: str | None = None,
        timeout: float = 30.0,
        allow_private_hosts: bool = False,
    ):
        self.url = require_https(url, "SAS_URL")
        self._token = token
        self.timeout = timeout
        self._session = https_session(ca_file=ca_file, allow_private_hosts=allow_private_hosts)

    @classmethod
    def from_config(cls, config: Mapping) -> "SasConnector | None":
        """None without SAS_URL: no SAS is configured, and its messages wait in the outbox."""
        if not config.get("SAS_URL"):
            return None
        return cls(
            url=config["SAS_URL"],
            token=config.get("SAS_API_TOKEN") or None,
            ca_file=config.get("SAS_CA_FILE") or None,
            timeout=float(config.get("SAS_TIMEOUT_SECONDS") or 30),
            allow_private_hosts=allows_private_hosts(config),
        )

    def send(self, message: OutgoingMessage) -> Receipt:
        """2xx: delivered. 4xx (but 408, 429): permanent. 5xx and network trouble: transient."""
        body = json.dumps(message.data, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": MEDIA_TYPE, "Accept": MEDIA_TYPE, "X-Idempotency-Key": message.idempotency_key}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        response = post(self._session, self.url, what=WHAT, timeout=self.timeout, data=body, headers=headers)
        raise_for_status(response, what=WHAT)
        return Receipt(id=f"{message.idempotency_key} ({response.status_code})")

    def close(self) -> None:
        self._session.close()
