"""A batch sent on kept SMTP connections, by several threads, pipelined where the server offers it (P4): a refused
recipient or a connection cut mid-batch costs that one message a retry, and no other message is lost or sent twice
(R2, R3, R6). A drain claims the next batch while one is sent: neither a slow server nor a failure to record a batch
makes it send a message twice."""

import asyncio
import datetime as dt
import threading
import time

import pytest
from sqlalchemy import event, select, update

from connectors import dispatcher
from connectors.dispatcher import dispatch_once, drain
from connectors.email import message_id_for
from connectors.registry import build_registry
from hub.db import rows_changed, utcnow
from hub.models import OutboxMessage, OutboxState
from tests.connectors.test_dispatch_concurrency import fill_queue
from tests.connectors.test_dispatcher import DOMAIN, queue, reload
from tests.servers import Recorder, SmtpServer

LATER = dt.timedelta(hours=2)  # past any backoff of a first retry


class PipeliningRecorder(Recorder):
    """Offers PIPELINING (RFC 2920) when asked, as Postfix and most MTAs do (aiosmtpd reads pipelined commands in
    order), counts EHLOs and can close its clients' connections, as a server does with idle ones."""

    def __init__(self, *, pipelining: bool = True):
        super().__init__()
        self.pipelining, self.ehlo_count, self.transports = pipelining, 0, []
        self.pipelined: list[bool] = []  # per MAIL: whether RCPT had already arrived behind it

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.pipelined.append(b"RCPT TO:" in bytes(server._reader._buffer))  # what the client sent ahead
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.ehlo_count += 1
        self.transports.append(server.transport)
        return [responses[0], "250-PIPELINING", *responses[1:]] if self.pipelining else responses


class CuttingRecorder(Recorder):
    """Cuts the connection, without answering nor keeping the message, the first time `victim`'s data arrives."""

    def __init__(self, victim: str):
        super().__init__()
        self.victim, self.cut = victim, False

    async def handle_DATA(self, server, session, envelope):
        if self.victim in envelope.rcpt_tos and not self.cut:
            self.cut = True
            server.transport.close()
            return "421 closing"  # never reaches the client: the transport is closed
        return await super().handle_DATA(server, session, envelope)


class SlowRecorder(Recorder):
    """Takes `seconds` to accept each message (content scanning, tarpitting), one connection not holding up another."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.seconds)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
def server(request, test_ca):
    with smtp_server_for(test_ca, pipelining=request.param) as smtp:
        yield smtp


def sent_once(server, messages) -> bool:
    counts = server.message_ids()
    return all(counts[message_id_for(m.idempotency_key, DOMAIN)] == 1 for m in messages)


@pytest.mark.parametrize("senders", [1, 4])
def test_a_recipient_refused_for_now_is_retried_and_the_others_are_sent_once(
    db_session, sessions, server, test_ca, senders
):
    server.refuse("busy@example.org", "450 4.2.1 Mailbox busy")
    messages = [queue(db_session, recipient=f"idel{n}@example.org") for n in range(12)]
    busy = queue(db_session, recipient="busy@example.org")
    messages += [queue(db_session, recipient=f"idel{n}@example.org") for n in range(12, 20)]
    db_session.commit()
    connectors = build_registry(server.config(test_ca.ca_file))

    stats = drain(sessions, connectors=connectors, senders=senders)

    assert (stats.sent, stats.retried, stats.dead) == (20, 1, 0)
    assert sent_once(server, messages) and len(server.messages) == 20
    row = reload(db_session, busy)
    assert (row.state, row.attempts) == (OutboxState.PENDING, 1)
    assert "450" in row.last_error

    server.accept("busy@example.org")
    retry = dispatch_once(sessions, connectors=connectors, now=row.next_attempt_at + dt.timedelta(seconds=1))

    assert retry.sent == 1 and reload(db_session, busy).state is OutboxState.SENT
    assert sent_once(server, [*messages, busy]) and len(server.messages) == 21


@pytest.mark.parametrize("senders", [1, 4])
def test_a_recipient_refused_for_good_is_dead_and_the_connection_serves_the_others(
    db_session, sessions, server, test_ca, senders
):
    server.refuse("gone@example.org", "550 5.1.1 Unknown user")
    gone = queue(db_session, recipient="gone@example.org")
    messages = [queue(db_session, recipient=f"idel{n}@example.org") for n in range(10)]
    db_session.commit()
    connectors = build_registry(server.config(test_ca.ca_file))

    stats = drain(sessions, connectors=connectors, senders=senders)

    assert (stats.sent, stats.dead) == (10, 1)
    assert reload(db_session, gone).state is OutboxState.DEAD
    assert sent_once(server, messages) and len(server.messages) == 10


def test_messages_waiting_for_their_connector_do_not_end_the_drain_before_the_queue_behind_them(
    db_session, sessions, server, test_ca
):
    # An SMS (no SMS connector here) at the head of every batch: the batches come back one short of full in
    # messages to send, and the drain must still go on to the e-mails behind them, not wait for its next run.
    messages = []
    for n in range(5):
        queue(db_session, channel="sms", recipient=f"+3361234567{n}")
        messages += [queue(db_session, recipient=f"idel{n}-{k}@example.org") for k in range(3)]
    db_session.commit()
    connectors = build_registry(server.config(test_ca.ca_file))

    stats = drain(sessions, connectors=connectors, batch=4, senders=1)

    assert (stats.sent, stats.unconfigured) == (15, 5)
    assert sent_once(server, messages) and len(server.messages) == 15


@pytest.mark.parametrize("pipelining", [False, True])
def test_the_envelope_is_pipelined_where_the_server_offers_it_and_only_there(db_session, sessions, test_ca, pipelining):
    """With PIPELINING, MAIL, RCPT and DATA leave in one write: the server holds RCPT before it answers MAIL."""
    with smtp_server_for(test_ca, pipelining=pipelining) as smtp:
        messages = [queue(db_session, recipient=f"idel{n}@example.org") for n in range(3)]
        db_session.commit()
        connectors = build_registry(smtp.config(test_ca.ca_file))

        stats = drain(sessions, connectors=connectors, senders=1)

        assert stats.sent == 3 and sent_once(smtp, messages)
        assert smtp.handler.pipelined == [pipelining] * 3
        assert smtp.handler.ehlo_count == 2  # one connection for the batch (EHLO, then again after STARTTLS)


@pytest.mark.parametrize("senders", [1, 4])
def test_a_connection_cut_mid_batch_loses_nothing_and_sends_nothing_twice(db_session, sessions, test_ca, senders):
    smtp = SmtpServer(tls_context=test_ca.server_context())
    smtp.handler = smtp.controller.handler = CuttingRecorder("idel5@example.org")
    with smtp:
        messages = [queue(db_session, recipient=f"idel{n}@example.org") for n in range(15)]
        db_session.commit()
        connectors = build_registry(smtp.config(test_ca.ca_file))

        stats = drain(sessions, connectors=connectors, senders=senders)

        assert smtp.handler.cut
        assert (stats.sent, stats.retried) == (14, 1)
        cut = reload(db_session, messages[5])
        assert cut.state is OutboxState.PENDING and "SMTP" in cut.last_error
        others = messages[:5] + messages[6:]
        assert sent_once(smtp, others) and len(smtp.messages) == 14

        dispatch_once(sessions, connectors=connectors, now=cut.next_attempt_at + dt.timedelta(seconds=1))

        assert reload(db_session, messages[5]).state is OutboxState.SENT
        assert sent_once(smtp, messages) and len(smtp.messages) == 15


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
def test_connections_the_server_closed_while_idle_are_reopened_without_a_duplicate(
    db_session, sessions, test_ca, pipelining
):
    with smtp_server_for(test_ca, pipelining=pipelining) as server:
        connectors = build_registry(server.config(test_ca.ca_file))
        first = [queue(db_session, recipient=f"idel{n}@example.org") for n in range(8)]
        db_session.commit()
        dispatch_once(sessions, connectors=connectors, senders=4, close_connections=False)
        assert connectors["email"].transport.open_connections >= 1
        for transport in server.handler.transports:  # the server closes every kept connection
            server.controller.loop.call_soon_threadsafe(transport.close)
        time.sleep(0.2)

        second = [queue(db_session, recipient=f"idel{n}@example.org") for n in range(8, 16)]
        db_session.commit()
        stats = dispatch_once(sessions, connectors=connectors, senders=4)

        assert (stats.sent, stats.retried) == (8, 0)  # each found its connection closed before sending: a new one
        assert sent_once(server, [*first, *second]) and len(server.messages) == 16
        assert connectors["email"].transport.open_connections == 0


@pytest.mark.parametrize("senders", [1, 2])
def test_a_batch_claimed_while_a_slow_one_is_sent_is_not_claimed_again_by_the_same_drain(
    db_session, sessions, test_ca, senders
):
    """Each batch takes twice the lease to send. The second batch, claimed when the first starts, waits longer than
    its lease: unless its lease starts again when it is handed to the senders, the claim of the third batch takes
    its rows again and they leave twice."""
    per_message = 0.5 * senders  # 4 messages a batch: 2 s a batch for a lease of 1 s
    smtp = SmtpServer(tls_context=test_ca.server_context())
    smtp.handler = smtp.controller.handler = SlowRecorder(per_message)
    with smtp:
        messages = [queue(db_session, recipient=f"idel{n}@example.org") for n in range(8)]
        db_session.commit()

        stats = drain(
            sessions,
            connectors=build_registry(smtp.config(test_ca.ca_file)),
            batch=4,
            lease=dt.timedelta(seconds=1),
            senders=senders,
        )

        assert sent_once(smtp, messages) and len(smtp.messages) == 8
        assert (stats.sent, stats.lost_lease) == (8, 0)
        rows = [reload(db_session, message) for message in messages]
        assert [(row.state, row.attempts) for row in rows] == [(OutboxState.SENT, 1)] * 8


@pytest.mark.concurrency
def test_a_waiting_batch_another_dispatcher_took_after_its_lease_is_left_to_it(committed, test_ca):
    """The second batch's lease runs out while the first is sent slowly, and another dispatcher claims its rows
    (the test makes that claim's UPDATE): when the drain comes to hand them to its senders they are no longer its
    own, and it sends none of them."""
    factory, created = committed
    keys = fill_queue(factory, created, 8, prefix="lease")
    smtp = SmtpServer(tls_context=test_ca.server_context())
    smtp.handler = smtp.controller.handler = SlowRecorder(1.0)  # 4 messages on 2 threads: 2 s for the first batch
    taken: list[int] = []

    def claim_after_the_lease() -> None:
        time.sleep(1.5)  # the second batch, claimed when the first started, is due again after 1 s
        with factory() as session:
            now = utcnow()
            taken.append(
                rows_changed(
                    session,
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.idempotency_key.in_(keys[4:]),
                        OutboxMessage.state == OutboxState.SENDING,
                        OutboxMessage.lease_until < now,
                    )
                    .values(attempts=OutboxMessage.attempts + 1, lease_until=now + dt.timedelta(minutes=5)),
                )
            )
            session.commit()

    with smtp:
        other = threading.Thread(target=claim_after_the_lease)
        other.start()
        try:
            stats = drain(
                factory,
                connectors=build_registry(smtp.config(test_ca.ca_file)),
                batch=4,
                lease=dt.timedelta(seconds=1),
                senders=2,
            )
        finally:
            other.join(30)

        assert taken == [4]
        assert (stats.sent, stats.lost_lease) == (4, 4)
        counts = smtp.message_ids()
        assert [counts[message_id_for(key, DOMAIN)] for key in keys] == [1] * 4 + [0] * 4
        with factory() as session:
            rows = session.scalars(
                select(OutboxMessage).where(OutboxMessage.idempotency_key.in_(keys)).order_by(OutboxMessage.id)
            ).all()
            states = [(row.state, row.attempts) for row in rows]
        assert states == [(OutboxState.SENT, 1)] * 4 + [(OutboxState.SENDING, 2)] * 4  # the rival's to send


def test_when_a_batch_cannot_be_recorded_the_next_one_already_sent_is_recorded_before_the_error(
    db_session, sessions, smtp_server, test_ca, monkeypatch
):
    """Writing the first batch's "sent" outcomes fails (a non-retryable error) once the second batch is on its
    way: the drain stops with the error, but only after the second batch's outcomes are written; unwritten, its
    messages would leave again after their lease."""
    monkeypatch.setattr(dispatcher, "RECORD_WITHIN_SECONDS", 60.0)  # each batch's outcomes in one write
    first = [queue(db_session, recipient=f"idel{n}@example.org") for n in range(4)]
    second = [queue(db_session, recipient=f"idel{n}@example.org") for n in range(4, 8)]
    db_session.commit()
    failed = []

    @event.listens_for(db_session.connection(), "before_cursor_execute")
    def fail_the_first_sent_outcome(_conn, _cursor, statement, parameters, *_args):
        is_sent_outcome = statement.startswith("UPDATE outbox_messages") and "receipt" in statement
        if is_sent_outcome and not failed:
            failed.append(statement)
            raise RuntimeError("the outcome cannot be written")

    with pytest.raises(RuntimeError, match="the outcome cannot be written"):
        drain(sessions, connectors=build_registry(smtp_server.config(test_ca.ca_file)), batch=4, senders=4)

    assert len(failed) == 1
    assert sent_once(smtp_server, [*first, *second]) and len(smtp_server.messages) == 8
    assert [reload(db_session, message).state for message in second] == [OutboxState.SENT] * 4
    # The first batch's outcomes were lost with the error: its messages come back after their lease (R2).
    assert [reload(db_session, message).state for message in first] == [OutboxState.SENDING] * 4


def smtp_server_for(test_ca, *, pipelining: bool) -> SmtpServer:
    smtp = SmtpServer(tls_context=test_ca.server_context())
    smtp.handler = smtp.controller.handler = PipeliningRecorder(pipelining=pipelining)
    return smtp
