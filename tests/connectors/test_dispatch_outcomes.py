"""Outcomes are written together (P4): the outcomes known within RECORD_WITHIN_SECONDS in one transaction, on
PostgreSQL in one statement, elsewhere one executemany per kind of outcome, each row still under its own lease
check; a slow batch writes what it knows before it grows old. The claim is one UPDATE for the batch."""

import itertools

import pytest

from connectors import dispatcher
from connectors.dispatcher import dispatch_once, drain
from connectors.registry import build_registry
from hub.models import OutboxState
from tests.connectors.test_dispatcher import queue, reload
from tests.queries import count_queries
from tests.servers import Recorder, SmtpServer


def outcome_updates(statements) -> int:
    # The lease compared for equality: the outcome's check (the claim's compares it with now).
    return sum(s.startswith("UPDATE outbox_messages") and "outbox_messages.lease_until = " in s for s in statements)


def transactions(statements) -> int:
    return sum(s.startswith(("SAVEPOINT", "BEGIN")) for s in statements)


def test_a_quick_batch_writes_its_outcomes_in_one_transaction(
    db_session, engine, sessions, smtp_server, email_connectors
):
    messages = [queue(db_session, recipient=f"idel{n}@example.org") for n in range(10)]
    smtp_server.refuse("idel3@example.org", "550 5.1.1 Unknown user")
    smtp_server.refuse("idel4@example.org", "451 4.3.0 Try later")
    db_session.commit()

    with count_queries(engine) as seen:
        stats = dispatch_once(sessions, connectors=email_connectors)

    assert (stats.sent, stats.dead, stats.retried) == (8, 1, 1)
    # PostgreSQL: one UPDATE … FROM unnest(…) for them all; elsewhere one executemany per kind: sent, dead, retried.
    writes = 1 if engine.dialect.name == "postgresql" else 3
    assert outcome_updates(seen) == writes
    assert transactions(seen) == 1 + 1  # the claim, then every outcome
    assert sum(s.startswith("UPDATE outbox_messages") for s in seen) == 1 + writes  # the claim is one statement too
    states = [reload(db_session, m).state for m in messages]
    assert states.count(OutboxState.SENT) == 8 and states[3] is OutboxState.DEAD and states[4] is OutboxState.PENDING


def test_outcomes_do_not_wait_longer_than_the_recording_delay(
    db_session, engine, sessions, smtp_server, email_connectors, monkeypatch
):
    """Each send "takes" 0.6 s: the outcomes are written every second or so, not all at the end."""
    ticks = itertools.count(step=0.6)
    monkeypatch.setattr(dispatcher, "clock_seconds", lambda: next(ticks))
    for n in range(6):
        queue(db_session, recipient=f"idel{n}@example.org")
    db_session.commit()

    with count_queries(engine) as seen:
        stats = dispatch_once(sessions, connectors=email_connectors)

    assert stats.sent == 6
    assert transactions(seen) == 1 + 3  # the claim, then outcomes 1–2, 3–4, 5–6


class PeerRecorder(Recorder):
    """Also notes from which client connection (address, port) each message came."""

    def __init__(self):
        super().__init__()
        self.peers: list = []

    async def handle_DATA(self, server, session, envelope):
        self.peers.append(session.peer)
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("senders", [1, 4])
def test_a_drain_keeps_its_smtp_connections_from_batch_to_batch_and_closes_them(db_session, sessions, test_ca, senders):
    server = SmtpServer(tls_context=test_ca.server_context())
    server.handler = server.controller.handler = PeerRecorder()
    with server:
        connectors = build_registry(server.config(test_ca.ca_file))
        for n in range(25):
            queue(db_session, recipient=f"idel{n}@example.org")
        db_session.commit()

        stats = drain(sessions, connectors=connectors, batch=10, senders=senders)

        assert stats.sent == 25 and len(server.messages) == 25
        assert 1 <= len(set(server.handler.peers)) <= senders  # three batches, at most one connection per sender
        assert connectors["email"].transport.open_connections == 0  # closed at the end of the drain
