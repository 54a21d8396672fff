"""The dispatcher on the real database and a real SMTP server: R1 (atomic enqueue), R5 (backoff, dead
letter, re-queue), R6 (a poison message does not delay the others), R7 (one message in flight per
group, in order), and messages for a channel with no connector wait instead of being lost."""

import datetime as dt
import json
import statistics
import uuid

import pytest
from sqlalchemy import func, select

from connectors import outbox
from connectors.base import OutgoingMessage, Receipt
from connectors.dispatcher import (
    ABANDONED,
    NOT_CONFIGURED,
    UNCONFIGURED_RETRY,
    backoff_delay,
    dispatch_once,
    requeue,
)
from connectors.email import message_id_for
from hub.db import utcnow
from hub.errors import Conflict
from hub.models import AuditEvent, Organisation, OutboxMessage, OutboxState, Role
from tests import factories

DOMAIN = "cpts-test.fr"


def queue(session, *, recipient="idel@example.org", channel="email", group_key=None, max_attempts=None, **extra):
    message = outbox.enqueue(
        session,
        channel=channel,
        recipient=recipient,
        kind="reminder",
        payload={"appointment_id": 7, "local_date": "2026-03-30", "local_time": "14:00", "recipient_kind": "idel"},
        idempotency_key=f"test:{uuid.uuid4().hex}",
        group_key=group_key,
        **extra,
    )
    if max_attempts is not None:
        message.max_attempts = max_attempts
    session.flush()  # the id orders the queue
    return message


def reload(session, message) -> OutboxMessage:
    session.expire_all()
    return session.get(OutboxMessage, message.id)


def after(message, seconds=1) -> dt.datetime:
    return message.next_attempt_at + dt.timedelta(seconds=seconds)


# --- R1 -----------------------------------------------------------------------------------------------


@pytest.mark.concurrency
def test_r1_a_rolled_back_change_queues_nothing_and_a_committed_one_one_message_per_recipient(committed):
    factory, created = committed
    recipients = ["a@example.org", "b@example.org", "c@example.org"]
    with factory() as session:
        org = factories.cpts(session)
        session.commit()
        created.append(org.id)

    def change_and_notify(session, key_prefix):
        session.get(Organisation, org.id).name = "CPTS renommée"
        for recipient in recipients:
            outbox.enqueue(
                session,
                channel="email",
                recipient=recipient,
                kind="notice",
                payload={"organisation_id": org.id},
                idempotency_key=f"{key_prefix}:{recipient}",
                cpts_id=org.id,
            )

    prefix = f"r1:{uuid.uuid4().hex}"
    with factory() as session:
        change_and_notify(session, prefix)
        session.flush()
        session.rollback()
    with factory() as session:
        assert session.get(Organisation, org.id).name != "CPTS renommée"
        assert session.scalar(select(func.count()).where(OutboxMessage.cpts_id == org.id)) == 0

    with factory() as session:
        change_and_notify(session, prefix)
        session.commit()
    with factory() as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.cpts_id == org.id)).all()
        assert sorted(row.recipient for row in rows) == recipients
        assert {row.state for row in rows} == {OutboxState.PENDING}


# --- sending --------------------------------------------------------------------------------------------


def test_a_due_message_is_sent_once_with_its_receipt(db_session, sessions, smtp_server, email_connectors):
    message = queue(db_session)
    db_session.commit()

    stats = dispatch_once(sessions, connectors=email_connectors)

    row = reload(db_session, message)
    assert (row.state, row.attempts, row.lease_until, row.last_error) == (OutboxState.SENT, 1, None, None)
    assert row.receipt == message_id_for(row.idempotency_key, DOMAIN)
    assert row.sent_at is not None
    assert stats.sent >= 1
    assert smtp_server.message_ids()[row.receipt] == 1
    dispatch_once(sessions, connectors=email_connectors)
    assert smtp_server.message_ids()[row.receipt] == 1


def test_a_message_not_yet_due_waits(db_session, sessions, smtp_server, email_connectors):
    message = queue(db_session)
    message.next_attempt_at = utcnow() + dt.timedelta(minutes=5)
    db_session.commit()
    dispatch_once(sessions, connectors=email_connectors)
    assert reload(db_session, message).state is OutboxState.PENDING
    assert smtp_server.messages == []


def test_a_channel_without_connector_keeps_its_messages(db_session, sessions, smtp_server, email_connectors):
    sms = queue(db_session, channel="sms", recipient="0612345678")
    db_session.commit()
    now = utcnow()

    stats = dispatch_once(sessions, connectors=email_connectors, now=now)

    row = reload(db_session, sms)
    assert (row.state, row.attempts, row.last_error) == (OutboxState.PENDING, 0, NOT_CONFIGURED)
    assert row.next_attempt_at == now + UNCONFIGURED_RETRY
    assert stats.unconfigured >= 1
    dispatch_once(sessions, connectors=email_connectors, now=now + UNCONFIGURED_RETRY)
    assert reload(db_session, sms).state is OutboxState.PENDING  # still there, still waiting


# --- R5 -----------------------------------------------------------------------------------------------


def test_r5_backoff_is_exponential_then_capped():
    ceilings = [backoff_delay(n, random=lambda: 1.0).total_seconds() for n in range(1, 11)]
    assert ceilings == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert backoff_delay(500, random=lambda: 1.0) == dt.timedelta(hours=1)
    assert backoff_delay(3, random=lambda: 0.0) == dt.timedelta(0)


def test_r5_backoff_is_jittered_over_the_whole_interval():
    delays = [backoff_delay(5).total_seconds() for _ in range(400)]
    assert all(0 <= d <= 480 for d in delays)
    assert len(set(delays)) > 390  # full jitter: messages failing together do not come back together
    assert min(delays) < 60 and max(delays) > 420
    assert 200 < statistics.mean(delays) < 280


def test_r5_a_failing_receiver_gets_capped_retries_then_the_message_is_dead(
    db_session, sessions, smtp_server, email_connectors
):
    smtp_server.refuse("busy@example.org", "451 4.3.0 Mailbox busy, try later")
    message = queue(db_session, recipient="busy@example.org", max_attempts=4)
    db_session.commit()

    now = utcnow()
    waits = []
    for attempt in range(1, 5):
        dispatch_once(sessions, connectors=email_connectors, now=now)
        row = reload(db_session, message)
        assert row.attempts == attempt
        if attempt < 4:
            assert row.state is OutboxState.PENDING
            assert "451" in row.last_error
            waits.append((row.next_attempt_at - now).total_seconds())
            assert 0 <= waits[-1] <= min(3600, 30 * 2 ** (attempt - 1))
            dispatch_once(sessions, connectors=email_connectors, now=now)  # not due yet: nothing happens
            assert reload(db_session, message).attempts == attempt
            now = after(row)
    assert row.state is OutboxState.DEAD
    assert "451" in row.last_error
    assert smtp_server.messages == []


def test_r5_a_permanent_refusal_is_dead_at_once(db_session, sessions, smtp_server, email_connectors):
    smtp_server.refuse("gone@example.org", "550 5.1.1 Unknown user")
    message = queue(db_session, recipient="gone@example.org")
    db_session.commit()

    dispatch_once(sessions, connectors=email_connectors)

    row = reload(db_session, message)
    assert (row.state, row.attempts) == (OutboxState.DEAD, 1)
    assert row.last_error.startswith("destinataire refusé par le serveur SMTP : 550")


def test_r5_the_admin_requeues_a_dead_message_and_it_is_audited(db_session, sessions, smtp_server, email_connectors):
    cpts = factories.cpts(db_session)
    admin = factories.user(db_session, cpts, Role.ADMIN)
    smtp_server.refuse("gone@example.org", "550 5.1.1 Unknown user")
    message = queue(db_session, recipient="gone@example.org", cpts_id=cpts.id)
    db_session.commit()
    dispatch_once(sessions, connectors=email_connectors)
    assert reload(db_session, message).state is OutboxState.DEAD

    smtp_server.accept("gone@example.org")  # the mailbox was fixed
    audited_before = db_session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
    requeue(db_session, admin, message.id)
    db_session.commit()
    row = reload(db_session, message)
    assert (row.state, row.attempts) == (OutboxState.PENDING, 0)
    [event] = db_session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "outbox.requeue",
            AuditEvent.target_id == str(message.id),
            AuditEvent.id > audited_before,
        )
    ).all()
    assert (event.actor_user_id, event.target_type, event.cpts_id) == (admin.id, "outbox_messages", cpts.id)
    assert json.loads(event.details) == {"channel": "email", "previous_attempts": 1}

    dispatch_once(sessions, connectors=email_connectors)
    assert reload(db_session, message).state is OutboxState.SENT
    with pytest.raises(Conflict):
        requeue(db_session, admin, message.id)


def test_r7_a_dead_original_is_not_requeued_once_its_correction_has_left(
    db_session, sessions, smtp_server, email_connectors
):
    cpts = factories.cpts(db_session)
    admin = factories.user(db_session, cpts, Role.ADMIN)
    group = f"report:{uuid.uuid4().hex}"
    smtp_server.refuse("gp@example.org", "550 5.1.1 Unknown user")
    original = queue(db_session, recipient="gp@example.org", group_key=group, cpts_id=cpts.id)
    db_session.commit()
    dispatch_once(sessions, connectors=email_connectors)
    assert reload(db_session, original).state is OutboxState.DEAD
    smtp_server.accept("gp@example.org")
    correction = queue(db_session, recipient="gp@example.org", group_key=group, cpts_id=cpts.id)
    db_session.commit()
    dispatch_once(sessions, connectors=email_connectors)
    assert reload(db_session, correction).state is OutboxState.SENT
    with pytest.raises(Conflict, match="plus récente"):
        requeue(db_session, admin, original.id)
    assert reload(db_session, original).state is OutboxState.DEAD


# --- R6 -----------------------------------------------------------------------------------------------


class Exploding:
    """A connector with a bug: it raises something that is neither transient nor permanent."""

    channel = "boom"

    def send(self, message: OutgoingMessage) -> Receipt:
        raise RuntimeError(f"bug while sending to {message.recipient}")


def test_r6_poison_messages_do_not_delay_the_others_in_the_batch(
    caplog, db_session, sessions, smtp_server, email_connectors
):
    smtp_server.refuse("gone@example.org", "550 5.1.1 Unknown user")
    poison = queue(db_session, recipient="gone@example.org")
    buggy = queue(db_session, channel="boom", recipient="someone@example.org")
    good = [queue(db_session, recipient=f"idel{n}@example.org") for n in range(3)]
    db_session.commit()

    connectors = email_connectors | {"boom": Exploding()}
    dispatch_once(sessions, connectors=connectors, batch=50)

    assert reload(db_session, poison).state is OutboxState.DEAD
    broken = reload(db_session, buggy)
    assert (broken.state, broken.last_error) == (OutboxState.PENDING, "erreur inattendue du connecteur (RuntimeError)")
    assert "someone" not in broken.last_error
    assert "unexpected connector error" in caplog.text and "someone" not in caplog.text, "nor in the log (I2)"
    assert {reload(db_session, m).state for m in good} == {OutboxState.SENT}
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == [f"idel{n}@example.org" for n in range(3)]


def test_r6_a_message_that_killed_its_dispatcher_on_the_last_attempt_is_not_sent_again(
    db_session, sessions, smtp_server, email_connectors
):
    message = queue(db_session, max_attempts=3)
    message.state, message.attempts = OutboxState.SENDING, 3
    message.lease_until = utcnow() - dt.timedelta(seconds=1)
    db_session.commit()

    dispatch_once(sessions, connectors=email_connectors)

    row = reload(db_session, message)
    assert (row.state, row.last_error) == (OutboxState.DEAD, ABANDONED)
    assert smtp_server.messages == []


# --- leases ---------------------------------------------------------------------------------------------


def test_a_message_whose_lease_ran_out_is_claimed_again(db_session, sessions, smtp_server, email_connectors):
    message = queue(db_session)
    message.state, message.attempts = OutboxState.SENDING, 1
    message.lease_until = utcnow() + dt.timedelta(minutes=5)
    db_session.commit()

    dispatch_once(sessions, connectors=email_connectors)
    assert reload(db_session, message).state is OutboxState.SENDING  # its dispatcher may still be at work

    dispatch_once(sessions, connectors=email_connectors, now=utcnow() + dt.timedelta(minutes=6))
    row = reload(db_session, message)
    assert (row.state, row.attempts) == (OutboxState.SENT, 2)


class Overtaken:
    """Sends, but so slowly that the lease runs out and another dispatcher re-claims the message."""

    channel = "slow"

    def __init__(self, sessions, now):
        self.sessions, self.now, self.sent = sessions, now, []

    def send(self, message: OutgoingMessage) -> Receipt:
        self.sent.append(message.idempotency_key)
        if len(self.sent) == 1:
            later = self.now + dt.timedelta(minutes=10)
            dispatch_once(self.sessions, connectors={"slow": self}, now=later)
        return Receipt(id=f"receipt-{len(self.sent)}")


def test_an_outcome_is_recorded_only_by_the_lease_holder(db_session, sessions):
    message = queue(db_session, channel="slow")
    db_session.commit()
    now = utcnow()
    connector = Overtaken(sessions, now)

    stats = dispatch_once(sessions, connectors={"slow": connector}, now=now)

    row = reload(db_session, message)
    assert connector.sent == [row.idempotency_key] * 2  # the same key both times: the receiver can dedupe
    assert (row.state, row.attempts, row.receipt) == (OutboxState.SENT, 2, "receipt-2")
    assert stats.lost_lease == 1


# --- R7 -----------------------------------------------------------------------------------------------


class GroupProbe:
    """While sending each message, looks at what another dispatcher could claim at that moment."""

    channel = "probe"

    def __init__(self, sessions):
        self.sessions = sessions
        self.order: list[str] = []
        self.claimable_meanwhile: list[int] = []

    def send(self, message: OutgoingMessage) -> Receipt:
        self.order.append(message.idempotency_key)
        with self.sessions() as session:
            from connectors.dispatcher import due_messages

            due = session.scalars(due_messages(utcnow(), batch=100)).all()
            self.claimable_meanwhile.extend(m.id for m in due if m.group_key == message.group_key)
        return Receipt(id=message.idempotency_key)


def test_r7_one_message_of_a_group_in_flight_at_a_time_and_in_order(db_session, sessions):
    group = f"report:{uuid.uuid4().hex}"
    original = queue(db_session, channel="probe", group_key=group)
    correction = queue(db_session, channel="probe", group_key=group)
    unrelated = queue(db_session, channel="probe")
    db_session.commit()
    probe = GroupProbe(sessions)

    first = dispatch_once(sessions, connectors={"probe": probe}, batch=50)
    assert reload(db_session, original).state is OutboxState.SENT
    assert reload(db_session, correction).state is OutboxState.PENDING  # not claimed with its elder
    assert reload(db_session, correction).attempts == 0
    assert reload(db_session, unrelated).state is OutboxState.SENT
    assert first.claimed >= 2

    dispatch_once(sessions, connectors={"probe": probe}, batch=50)
    assert reload(db_session, correction).state is OutboxState.SENT
    assert probe.order.index(original.idempotency_key) < probe.order.index(correction.idempotency_key)
    assert probe.claimable_meanwhile == []  # while the original was in flight, the correction was not claimable


def test_r7_a_retried_original_still_holds_back_its_correction(db_session, sessions, smtp_server, email_connectors):
    smtp_server.refuse("gp@example.org", "451 4.3.0 Try later")
    group = f"report:{uuid.uuid4().hex}"
    original = queue(db_session, recipient="gp@example.org", group_key=group)
    correction = queue(db_session, recipient="gp@example.org", group_key=group)
    db_session.commit()

    now = utcnow()
    dispatch_once(sessions, connectors=email_connectors, now=now)
    dispatch_once(sessions, connectors=email_connectors, now=now + dt.timedelta(seconds=1))
    assert reload(db_session, correction).attempts == 0  # due, but its elder is pending: it waits
    # Read after both passes: with a jitter under a second, the second pass retried the original too.
    retry_at = reload(db_session, original).next_attempt_at

    smtp_server.accept("gp@example.org")
    dispatch_once(sessions, connectors=email_connectors, now=retry_at + dt.timedelta(seconds=1))
    dispatch_once(sessions, connectors=email_connectors, now=retry_at + dt.timedelta(seconds=2))
    assert [m.message_id for m in smtp_server.messages] == [
        message_id_for(original.idempotency_key, DOMAIN),
        message_id_for(correction.idempotency_key, DOMAIN),
    ]
