"""P4: outbox dispatch to a loopback SMTP server, against raw smtplib sending the same messages on one connection.

On each database (a fresh SQLite file in a temporary directory; PostgreSQL with `--database postgresql` or
`both`, or when BENCH_PG_URL is set, in a dedicated database whose `public` schema is dropped and made again),
the script migrates, queues N e-mail messages for one CPTS (`connectors.outbox.enqueue`, one transaction, not
timed) and starts an aiosmtpd server on 127.0.0.1 with STARTTLS on a trustme certificate (tests/servers.py), in a
process of its own since 2026-12-04 (as a real MTA: its CPU is no longer charged to the senders through the GIL).
Each round then measures:

  hub        `connectors.dispatcher.drain` with the EmailConnector (SENDERS threads, each with its SMTP
             connection kept across batches, STARTTLS verified against the test CA, the envelope pipelined when
             the server offers PIPELINING) until every message is sent: claims, composition, sending, and each
             outcome recorded under its lease check;
  baseline   smtplib: one connection, STARTTLS with the same CA, `send_message` of the very same e-mails
             (composed beforehand by the connector, outside the timing), then QUIT — the goal's reference;
  composing  the same smtplib loop building each e-mail (same headers and body) with EmailMessage inside
             the timing, as a script sending them would (for reference);
  wire       the same smtplib loop with `sendmail` of the e-mails already flattened to bytes: the floor of
             one connection without pipelining (for reference).

The server offers PIPELINING unless --no-pipelining (smtplib never uses it: only the hub gains from it).

Between rounds every row goes back to pending and the server forgets what it received. The script checks
that the server received each message once per measurement (by Message-ID) and that every row ends `sent`.

    .venv/bin/python bench/dispatch.py                           # SQLite, 2,000 messages, 3 rounds
    .venv/bin/python bench/dispatch.py --database both --messages 2000 --rounds 5
    BENCH_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench_dispatch .venv/bin/python bench/dispatch.py
    .venv/bin/python bench/dispatch.py --profile                 # cProfile of one hub drain
    .venv/bin/python bench/dispatch.py --senders 1 --no-pipelining   # one connection, no pipelining
"""

import argparse
import cProfile
import multiprocessing
import os
import pstats
import smtplib
import ssl
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import fields
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select, update  # noqa: E402

from bench.common import prepare_postgresql  # noqa: E402 (needs the repository on sys.path)
from connectors import outbox  # noqa: E402
from connectors.base import OutgoingMessage  # noqa: E402
from connectors.dispatcher import SENDERS, drain  # noqa: E402
from connectors.registry import build_registry  # noqa: E402
from hub import migrate  # noqa: E402
from hub.db import make_engine, make_session_factory, session_scope, utcnow  # noqa: E402
from hub.models import OutboxMessage, OutboxState  # noqa: E402
from tests import factories  # noqa: E402
from tests.servers import Recorder, SmtpServer, TestCA  # noqa: E402

GOAL = 1.0
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_dispatch"
BATCH = 50
HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted")


def seed(factory, count: int) -> None:
    with session_scope(factory) as session:
        cpts = factories.cpts(session, "CPTS banc d'essai P4")
        for n in range(count):
            outbox.enqueue(
                session,
                channel="email",
                recipient=f"idel{n}@example.org",
                kind="reminder",
                payload={
                    "appointment_id": n,
                    "local_date": "2026-12-07",
                    "local_time": "14:00",
                    "recipient_kind": "idel",
                },
                idempotency_key=f"bench-p4:{n}",
                cpts_id=cpts.id,
            )


def reset(factory) -> None:
    with session_scope(factory) as session:
        session.execute(
            update(OutboxMessage).values(
                state=OutboxState.PENDING,
                attempts=0,
                next_attempt_at=utcnow(),
                lease_until=None,
                receipt=None,
                sent_at=None,
            )
        )


class PipeliningRecorder(Recorder):
    """The test server offering PIPELINING (RFC 2920), as Postfix and most MTAs do; aiosmtpd reads pipelined
    commands in order (tests/connectors/test_dispatch_batches.py). smtplib never pipelines: the baselines are
    unchanged by it."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [responses[0], "250-PIPELINING", *responses[1:]]


class ServerProcess:
    """The test SMTP server (aiosmtpd, STARTTLS on a certificate of the test CA) in a process of its own, as a real
    MTA is: in the bench's process its CPU, GIL included, would be charged to whichever sender it answers, and the
    hub's several connections and pipelining could not go past the pace of one Python thread serving them. The
    bench asks it, over a pipe, for the Message-IDs it received and to forget them between measurements."""

    def __init__(self, ca: TestCA, directory: Path, *, pipelining: bool, starttls: bool = True):
        chain = directory / "server.pem"
        ca.ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(chain))
        context = multiprocessing.get_context("spawn")  # nothing of this process (threads, connections) inherited
        self._pipe, child = context.Pipe()
        arguments = (child, str(chain), str(ca.ca_file), pipelining, starttls)
        self._process = context.Process(target=_serve, args=arguments, daemon=True)

    def __enter__(self) -> "ServerProcess":
        self._process.start()
        self.settings: dict = self._pipe.recv()  # the hub settings pointing the e-mail connector at the server
        self.host, self.port = self.settings["SMTP_HOST"], self.settings["SMTP_PORT"]
        return self

    def __exit__(self, *exc_info) -> None:
        self._pipe.send("stop")
        self._process.join(10)

    def message_ids(self) -> Counter:
        self._pipe.send("ids")
        return self._pipe.recv()

    def forget(self) -> None:
        self._pipe.send("forget")
        self._pipe.recv()


def _serve(pipe, chain: str, ca_file: str, pipelining: bool, starttls: bool) -> None:
    """The server process: serve until told to stop, answering the bench's questions. Without `starttls`, plain
    SMTP (P7's local relay, bench/p7/peak_hour.py's hub_env)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    server = SmtpServer(tls_context=context if starttls else None)
    if pipelining:
        server.handler = server.controller.handler = PipeliningRecorder()
    with server:
        pipe.send(server.config(Path(ca_file), SMTP_STARTTLS=int(starttls)))
        while (command := pipe.recv()) != "stop":
            if command == "ids":
                pipe.send(server.message_ids())
            else:
                with server.handler.lock:
                    server.handler.messages.clear()
                pipe.send(None)


def hub_run(factory, registry, count: int, senders: int) -> float:
    started = time.perf_counter()
    sent = 0
    while sent < count:
        stats = drain(factory, connectors=registry, batch=BATCH, max_batches=count // BATCH + 2, senders=senders)
        if stats.claimed == 0:
            break
        sent += stats.sent
    return time.perf_counter() - started


def _connected(server: ServerProcess, context: ssl.SSLContext) -> smtplib.SMTP:
    """One connection as the baselines open it: EHLO, STARTTLS, EHLO again (inside their timing)."""
    smtp = smtplib.SMTP(server.host, server.port, timeout=30)
    smtp.ehlo()
    smtp.starttls(context=context)
    smtp.ehlo()
    return smtp


def baseline_run(server: ServerProcess, ca_file: Path, emails) -> float:
    context = ssl.create_default_context(cafile=str(ca_file))
    started = time.perf_counter()
    smtp = _connected(server, context)
    for email, recipient in emails:
        smtp.send_message(email, from_addr=email["From"], to_addrs=[recipient])
    smtp.quit()
    return time.perf_counter() - started


def baseline_composing_run(server: ServerProcess, ca_file: Path, emails) -> float:
    """The same, building each e-mail with email.message.EmailMessage inside the timing, as a script would."""
    parts = [
        ({name: str(email[name]) for name in HEADERS}, email.get_payload(decode=True).decode(), recipient)
        for email, recipient in emails
    ]
    context = ssl.create_default_context(cafile=str(ca_file))
    started = time.perf_counter()
    smtp = _connected(server, context)
    for headers, body, recipient in parts:
        email = EmailMessage()
        for name, value in headers.items():
            email[name] = value
        email.set_content(body)
        smtp.send_message(email, from_addr=headers["From"], to_addrs=[recipient])
    smtp.quit()
    return time.perf_counter() - started


def composed(factory, registry):
    """The same e-mails the hub sends, composed by its connector (for the baseline, outside the timing), as the
    email package's messages that `send_message` takes."""
    connector = registry["email"]
    with factory() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        # The fields the dispatcher copies from a claimed row (connectors.dispatcher._MESSAGE_FIELDS).
        messages = [OutgoingMessage(**{f.name: getattr(row, f.name) for f in fields(OutgoingMessage)}) for row in rows]
        return [(message_from_bytes(connector.compose(message)), message.recipient) for message in messages]


def wire_run(server: ServerProcess, ca_file: Path, emails) -> float:
    """The floor: smtplib `sendmail` of the same e-mails already in wire form, on one connection."""
    wire = [(email.as_bytes(policy=email.policy.clone(linesep="\r\n")), recipient) for email, recipient in emails]
    context = ssl.create_default_context(cafile=str(ca_file))
    started = time.perf_counter()
    smtp = _connected(server, context)
    for (data, recipient), (email, _) in zip(wire, emails, strict=True):
        smtp.sendmail(email["From"], [recipient], data)
    smtp.quit()
    return time.perf_counter() - started


def check(server: ServerProcess, factory, count: int, what: str) -> None:
    ids = server.message_ids()
    if len(ids) != count or set(ids.values()) != {1}:
        raise SystemExit(
            f"{what}: the server received {sum(ids.values())} messages, {len(ids)} distinct, expected {count}"
        )
    if factory is not None:
        with factory() as session:
            sent = session.scalar(select(func.count()).where(OutboxMessage.state == OutboxState.SENT))
        if sent != count:
            raise SystemExit(f"{what}: {sent} rows sent, expected {count}")


def measure(label: str, url: str, count: int, rounds: int, *, senders: int, pipelining: bool, profile: bool) -> dict:
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    seed(factory, count)
    with tempfile.TemporaryDirectory() as ca_dir:
        ca = TestCA(Path(ca_dir))
        with ServerProcess(ca, Path(ca_dir), pipelining=pipelining) as server:
            registry = build_registry(server.settings)
            emails = composed(factory, registry)
            hub_times, baseline_times, composing_times, wire_times = [], [], [], []
            for _ in range(rounds):
                reset(factory)
                server.forget()
                hub_times.append(hub_run(factory, registry, count, senders))
                check(server, factory, count, "hub")
                server.forget()
                baseline_times.append(baseline_run(server, ca.ca_file, emails))
                check(server, None, count, "baseline")
                server.forget()
                composing_times.append(baseline_composing_run(server, ca.ca_file, emails))
                check(server, None, count, "baseline composing")
                server.forget()
                wire_times.append(wire_run(server, ca.ca_file, emails))
                check(server, None, count, "smtplib wire")
            if profile:
                reset(factory)
                server.forget()
                profiler = cProfile.Profile()
                profiler.runcall(hub_run, factory, registry, count, senders)
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    engine.dispose()
    return {
        "label": label,
        "count": count,
        "hub": statistics.median(hub_times),
        "baseline": statistics.median(baseline_times),
        "composing": statistics.median(composing_times),
        "wire": statistics.median(wire_times),
    }


def report(result: dict) -> None:
    count, hub, baseline, composing = result["count"], result["hub"], result["baseline"], result["composing"]
    wire = result["wire"]
    ratio = baseline / hub  # of throughputs
    verdict = "met" if ratio >= GOAL else "missed"
    print(
        f"{result['label']:<11} {count} msgs | smtplib, pre-composed {baseline:6.2f} s ({count / baseline:5.0f} msg/s)"
        f" | smtplib composing {composing:6.2f} s ({count / composing:5.0f} msg/s)"
        f" | hub drain {hub:6.2f} s ({count / hub:5.0f} msg/s)"
        f" | smtplib wire {wire:6.2f} s ({count / wire:5.0f} msg/s)"
        f" | ratio {ratio:.2f} (goal ≥ {GOAL}: {verdict}; {composing / hub:.2f} against smtplib composing,"
        f" {wire / hub:.2f} against smtplib wire)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default=None)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL") or DEFAULT_PG_URL)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--senders", type=int, default=SENDERS, help="the drain's sending threads (connections)")
    parser.add_argument("--pipelining", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    database = args.database or ("both" if os.environ.get("BENCH_PG_URL") else "sqlite")
    options = {"senders": args.senders, "pipelining": args.pipelining, "profile": args.profile}
    results = []
    if database in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench-dispatch.sqlite3"
            results.append(measure("SQLite", url, args.messages, args.rounds, **options))
    if database in ("postgresql", "both"):
        prepare_postgresql(args.pg_url)
        results.append(measure("PostgreSQL", args.pg_url, args.messages, args.rounds, **options))
    print(
        f"P4 — {args.messages} messages, median of {args.rounds} rounds, batch {BATCH}, {args.senders} sender(s),"
        f" server {'with' if args.pipelining else 'without'} PIPELINING"
    )
    for result in results:
        report(result)


if __name__ == "__main__":
    main()
