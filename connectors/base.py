"""What every connector is: `send(message) -> Receipt`, raising a transient or a permanent error.

The dispatcher (connectors.dispatcher) hands a connector an `OutgoingMessage`, a detached copy of an
outbox row taken when the row was claimed, so that sending never touches the database session.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hub.models import OutboxMessage


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

    @classmethod
    def of(cls, row: OutboxMessage) -> "OutgoingMessage":
        return cls(
            id=row.id,
            idempotency_key=row.idempotency_key,
            channel=row.channel,
            recipient=row.recipient,
            kind=row.kind,
            payload=row.payload,
            cpts_id=row.cpts_id,
            group_key=row.group_key,
            attempts=row.attempts,
        )

    @property
    def data(self) -> dict:
        return json.loads(self.payload or "{}")


@runtime_checkable
class Connector(Protocol):
    channel: str

    def send(self, message: OutgoingMessage) -> Receipt:
        """Deliver one message to its one recipient, or raise TransientError / PermanentError."""
        ...  # pragma: no cover


def build_registry(config: Mapping) -> dict[str, Connector]:
    """channel → connector, for every connector whose settings are present. A channel missing here is
    "not configured": its messages wait in the outbox (connectors.dispatcher) instead of being lost."""
    # Imported here: each connector module imports this one for the errors and the receipt.
    from connectors.email import EmailConnector

    registry: dict[str, Connector] = {}
    for factory in (EmailConnector.from_config,):
        connector = factory(config)
        if connector is not None:
            registry[connector.channel] = connector
    return registry


def close_all(registry: Mapping[str, Connector]) -> None:
    """Let connectors that keep a connection open between messages close it."""
    for connector in registry.values():
        close = getattr(connector, "close", None)
        if close is not None:
            close()
