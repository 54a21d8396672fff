"""R3: several dispatchers drain thousands of messages — none handled by two at once, none lost.

On PostgreSQL, four dispatcher processes claim with FOR UPDATE SKIP LOCKED; on SQLite, two threads
serialised by BEGIN IMMEDIATE. Half of them send each batch with four threads on four SMTP connections.
Every message is counted where it lands: at the SMTP server, by Message-ID (derived from the idempotency
key)."""

import json
import subprocess
import sys
import threading
import time
import uuid

import pytest
from sqlalchemy import select

from connectors import outbox
from connectors.dispatcher import DispatchStats, dispatch_once
from connectors.email import message_id_for
from connectors.registry import build_registry
from hub.config import PROJECT_ROOT
from hub.models import OutboxMessage, OutboxState
from tests import factories

pytestmark = pytest.mark.concurrency

DISPATCHER = """
import json, sys, time
from connectors.registry import build_registry
from connectors.dispatcher import dispatch_once
from hub.db import make_engine, make_session_factory

url, config, senders = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
sessions = make_session_factory(make_engine(url))
connectors = build_registry(config)
totals, idle = {}, 0
while idle < 10:
    stats = dispatch_once(sessions, connectors=connectors, batch=25, senders=senders)
    for name, value in vars(stats).items():
        totals[name] = totals.get(name, 0) + value
    idle = 0 if stats.claimed else idle + 1
    if not stats.claimed:
        time.sleep(0.05)
print(json.dumps(totals))
"""


def fill_queue(factory, created, count: int, *, prefix: str = "r3") -> list[str]:
    """`count` committed e-mail messages of a new CPTS (removed after the test), their keys in order."""
    with factory() as session:
        org = factories.cpts(session)
        session.commit()
        created.append(org.id)
        keys = [f"{prefix}:{uuid.uuid4().hex}:{n}" for n in range(count)]
        for n, key in enumerate(keys):
            outbox.enqueue(
                session,
                channel="email",
                recipient=f"pro{n}@example.org",
                kind="reminder",
                payload={"appointment_id": n},
                idempotency_key=key,
                cpts_id=org.id,
            )
        session.commit()
    return keys


def assert_each_sent_once(factory, smtp_server, keys: list[str], sent_by_dispatchers: int) -> None:
    counts = smtp_server.message_ids()
    expected = {message_id_for(key, "cpts-test.fr") for key in keys}
    assert {mid for mid in expected if counts[mid] != 1} == set()  # every one, exactly once
    assert sent_by_dispatchers == len(keys)
    with factory() as session:
        states = session.scalars(select(OutboxMessage.state).where(OutboxMessage.idempotency_key.in_(keys))).all()
    assert len(states) == len(keys)
    assert set(states) == {OutboxState.SENT}


def test_r3_dispatcher_processes_drain_the_queue_on_postgresql(committed, database_url, smtp_server, smtp_config):
    if not database_url.startswith("postgresql"):
        pytest.skip("dispatcher processes share the queue with FOR UPDATE SKIP LOCKED: PostgreSQL only")
    factory, created = committed
    keys = fill_queue(factory, created, 2000)
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", DISPATCHER, database_url, json.dumps(smtp_config), str(senders)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for senders in (1, 4, 1, 4)  # some send on one connection, others with four threads on four
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    elapsed = time.monotonic() - started

    assert_each_sent_once(factory, smtp_server, keys, sum(r["sent"] for r in results))
    assert all(r["lost_lease"] == 0 for r in results)
    assert sum(1 for r in results if r["sent"]) >= 2, results  # the work really was shared
    print(f"R3: 2000 messages, 4 processes, {elapsed:.1f} s, per process {[r['sent'] for r in results]}")


def test_r3_two_dispatcher_threads_drain_the_queue_on_sqlite(committed, database_url, smtp_server, smtp_config):
    if database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL runs several dispatcher processes instead")
    factory, created = committed
    keys = fill_queue(factory, created, 300)
    connectors = build_registry(smtp_config)
    totals: list[DispatchStats] = []
    errors: list[BaseException] = []

    def dispatcher(senders: int):
        try:
            idle = 0
            while idle < 5:
                stats = dispatch_once(factory, connectors=connectors, batch=25, senders=senders)
                totals.append(stats)
                idle = 0 if stats.claimed else idle + 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher, args=(senders,)) for senders in (1, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert_each_sent_once(factory, smtp_server, keys, sum(s.sent for s in totals))
    assert sum(s.lost_lease for s in totals) == 0
