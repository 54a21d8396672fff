"""What every connector is: `send(message) -> Receipt`, raising a transient or a permanent error.

The dispatcher (connectors.dispatcher) hands a connector an `OutgoingMessage`, a detached copy of an
outbox row taken when the row was claimed, so that sending never touches the database session.
"""

import json
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Receipt:
    """What the receiver said it accepted: a message id, a queue id… Stored on the outbox row."""

    id: str


class ConnectorError(Exception):
    """A delivery failure. The message (French) is shown to the admin: it must hold no health data."""


class TransientError(ConnectorError):
    """Worth retrying later: network down, receiver busy, 4xx replies."""


class PermanentError(ConnectorError):
    """Retrying cannot help (unknown mailbox, message refused, 5xx replies): the message goes dead."""


@dataclass(frozen=True)
class OutgoingMessage:
    """An outbox row as the connector sees it: the same fields, no session behind it."""

    id: int
    idempotency_key: str
    channel: str
    recipient: str
    kind: str
    payload: str
    cpts_id: int | None = None
    group_key: str | None = None
    attempts: int = 0

    @property
    def data(self) -> dict:
        return json.loads(self.payload or "{}")


@runtime_checkable
class Connector(Protocol):
    channel: str

    def send(self, message: OutgoingMessage) -> Receipt:
        """Deliver one message to its one recipient, or raise TransientError / PermanentError."""
        ...  # pragma: no cover
