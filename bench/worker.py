"""Issue 17 (P7's worker share): the hub worker's CPU per signed report, the documents' rendering excluded.

On the database given by `--database-url` (a PostgreSQL URL names a database of its own, whose `public` schema is
dropped and made again; default SQLite in a temporary file) the script builds the territory of bench/reports.py,
signs `--reports` reports through the API (POST …/sign: statements and CPU per request), then runs the worker's
loops as `flask hub worker` does, one after the other until nothing is left: the rendering pass
(`reports.render_pending`: its claims, the deliveries it queues; the rendering call `render_frozen` itself is
timed apart and subtracted), the outbox drain to the tests' SMTP sink (aiosmtpd with STARTTLS, in a process of
its own, as bench/dispatch.py), the deliveries' follow-up and the audit sequencer. It prints the process CPU and
the statements of each loop, per signed report, then what an idle pass of the four loops costs (statements and
CPU) and checks that every e-mail reached the sink once. `--profile` prints a cProfile (CPU clock) of the loops.

`--p7` runs the worker as P7 has it (bench/p7/peak_hour.py's hub_env): MSSanté not configured (the deliveries are
claimed, then put back to wait for it), e-mail in plain SMTP to a sink without PIPELINING, and P7's ~3 e-mails a
teleconsultation (`--emails-per-report`, topped up with IDEL notices); the rendering call is then counted in the
total (`--profile` profiles it too), as it is part of what P7's worker spends per report.

    .venv/bin/python bench/worker.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_hf
"""

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import time_machine  # noqa: E402
from sqlalchemy import event, func, insert, select, update  # noqa: E402

from bench.dispatch import ServerProcess  # noqa: E402 (needs the repository on sys.path)
from bench.reports import FIRST, WRITTEN, _app, _sessions_to_report  # noqa: E402
from connectors import outbox  # noqa: E402
from connectors.dispatcher import drain  # noqa: E402
from connectors.registry import build_registry  # noqa: E402
from hub import audit  # noqa: E402
from hub.models import (  # noqa: E402
    OutboxMessage,
    OutboxState,
    Patient,
    Profession,
    Professional,
    Report,
    awaiting_rendering,
)
from tests import factories, read_paths  # noqa: E402
from tests.servers import TestCA  # noqa: E402
from workflows import deliveries, reports  # noqa: E402


class Counted:
    """Statements and process CPU of whatever runs inside, the rendering call's CPU set apart."""

    def __init__(self, engine):
        self.engine, self.statements, self.cpu, self.rendering = engine, 0, 0.0, 0.0

    def _count(self, *_args):
        self.statements += 1

    def run(self, call):
        event.listen(self.engine, "before_cursor_execute", self._count)
        started = time.process_time()
        try:
            return call()
        finally:
            self.cpu += time.process_time() - started
            event.remove(self.engine, "before_cursor_execute", self._count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--reports", type=int, default=70)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--p7", action="store_true", help="MSSanté not configured, plain SMTP: P7's worker")
    parser.add_argument("--emails-per-report", type=float, default=3.0, help="with --p7")
    args = parser.parse_args()
    assert args.reports + FIRST <= 84, "read_paths' calendar holds 84 sessions"
    with tempfile.TemporaryDirectory() as tmp, time_machine.travel(factories.NOW, tick=True):
        ca = TestCA(Path(tmp))
        with ServerProcess(ca, Path(tmp), pipelining=not args.p7, starttls=not args.p7) as server:
            url = args.database_url or f"sqlite:///{tmp}/worker.sqlite3"
            app = _app(url, f"{tmp}/uploads")
            cert_file, key_file = ca.client_cert(Path(tmp), "hub-app.cpts-test.fr")
            mssante = {  # the documents to the same sink, over MSSanté (STARTTLS, the structure's certificate)
                "MSSANTE_HOST": server.host,
                "MSSANTE_PORT": server.port,
                "MSSANTE_SENDER": "coordination@cpts-test.mssante.fr",
                "MSSANTE_CA_FILE": str(ca.ca_file),
                "MSSANTE_CERT_FILE": str(cert_file),
                "MSSANTE_KEY_FILE": str(key_file),
            }
            documents = {} if args.p7 else mssante
            config = app.config["HUB"] | server.settings | documents | {"AUDIT_CHECKPOINT_FILE": f"{tmp}/audit.jsonl"}
            sessions, engine = app.extensions["hub.sessions"], app.extensions["hub.engine"]
            with sessions() as session:
                scene = read_paths.build(session, factories.cpts(session), visits=FIRST)
                todo = _sessions_to_report(session, scene, args.reports)
                # Every professional with a secure mailbox, every patient with a GP: each report has its deliveries.
                session.execute(
                    update(Professional).values(mssante_address=func.concat("pro", Professional.id, "@test.mssante.fr"))
                )
                gp = select(Professional.id).where(Professional.profession == Profession.GENERAL_PRACTITIONER).limit(1)
                session.execute(update(Patient).values(attending_gp_id=gp.scalar_subquery()))
                session.commit()
            signing = _sign_all(app, engine, scene.tokens["specialist"], todo)
            if args.p7:
                with sessions() as session:
                    _top_up_emails(session, scene, round(args.emails_per_report * args.reports))
                    session.commit()
            _loops(args, sessions, engine, config, tmp, server)
            print(
                f"POST …/sign: {signing.statements / args.reports:.1f} statements, "
                f"{signing.cpu * 1000 / args.reports:.2f} ms CPU per request (test client, whole request)"
            )
            print(f"{url.split('@')[-1]}: {args.reports} signed reports; load {os.getloadavg()[0]:.1f}")
            engine.dispose()


def _sign_all(app, engine, bearer: str, todo: list[int]) -> Counted:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {bearer}"}
    signing = Counted(engine)
    for appointment_id in todo:
        report = client.post("/api/v1/reports", json={"appointment_id": appointment_id}, headers=headers).get_json()
        assert client.patch(f"/api/v1/reports/{report['id']}", json=WRITTEN, headers=headers).status_code == 200
        sign = f"/api/v1/reports/{report['id']}/sign"
        answer = signing.run(lambda sign=sign: client.post(sign, headers=headers))
        assert answer.status_code == 200, answer.get_data(as_text=True)
    return signing


def _top_up_emails(session, scene, wanted: int) -> None:
    """E-mails queued until the outbox holds `wanted` (what the territory's making queued counts): notices to the
    IDEL, the commonest of P7's e-mails."""
    queued = session.scalar(select(func.count()).where(OutboxMessage.channel == "email"))
    idel = scene.territory.idel
    for n in range(wanted - queued):
        row = outbox.email_row(idel, kind="visit_offered", payload={}, key=f"bench-{n}", cpts_id=idel.cpts_id)
        session.execute(insert(OutboxMessage), row)


def _loops(args, sessions, engine, config, tmp: str, server) -> None:
    registry = build_registry(config)
    key, checkpoints = audit.key_bytes(config), audit.checkpoint_path(config)
    render = reports.render_frozen
    timers = {name: Counted(engine) for name in ("render (ours)", "drain", "follow deliveries", "audit sequencer")}

    profiler = cProfile.Profile(time.process_time) if args.profile else None
    idle_profiler = cProfile.Profile(time.process_time) if args.profile else None

    def rendering(*call_args, **kwargs):  # the real rendering call, its CPU set apart (hA's part, not ours)
        if profiler and not args.p7:
            profiler.disable()
        started = time.process_time()
        try:
            return render(*call_args, **kwargs)
        finally:
            timers["render (ours)"].rendering += time.process_time() - started
            if profiler and not args.p7:
                profiler.enable()

    _warm_up(sessions, tmp, config["TIMEZONE"])
    reports.render_frozen = rendering
    loops = {
        "render (ours)": lambda: reports.render_pending(
            sessions, upload_dir=Path(f"{tmp}/uploads"), zone=config["TIMEZONE"]
        ),
        # Profiled, the drain sends from the main thread: cProfile sees only the thread it runs in.
        "drain": lambda: drain(sessions, connectors=registry, **({"senders": 1} if args.profile else {})),
        "follow deliveries": lambda: deliveries.follow_deliveries(sessions),
        "audit sequencer": lambda: audit.run_sequencer(sessions, key=key, checkpoint_file=checkpoints),
    }
    try:
        passes = 0
        while passes < 10:  # as the worker's runs, until every document is rendered and every message sent
            passes += 1
            for name, loop in loops.items():
                if profiler:
                    profiler.enable()
                timers[name].run(loop)
                if profiler:
                    profiler.disable()
            if not _left(sessions, args.p7):
                break
        idle = Counted(engine)
        idle_each = {}
        started = time.perf_counter()
        for name, loop in loops.items():
            before = idle.statements, idle.cpu
            if idle_profiler:
                idle_profiler.enable()
            idle.run(loop)
            if idle_profiler:
                idle_profiler.disable()
            idle_each[name] = (idle.statements - before[0], (idle.cpu - before[1]) * 1000)
        idle_wall = time.perf_counter() - started
    finally:
        reports.render_frozen = render
    n = args.reports
    print(f"{passes} passes of the worker's loops")
    print(f"{'worker loop':20} {'statements/report':>18} {'CPU ms/report':>14}")
    for name, timer in timers.items():
        cpu = timer.cpu - timer.rendering
        print(f"{name:20} {timer.statements / n:>18.1f} {cpu * 1000 / n:>14.2f}")
    ours = sum(t.cpu - t.rendering for t in timers.values())
    print(f"{'total, ours':20} {sum(t.statements for t in timers.values()) / n:>18.1f} {ours * 1000 / n:>14.2f}")
    rendering_cpu = timers["render (ours)"].rendering
    print(f"(rendering call apart: {rendering_cpu * 1000 / n:.2f} ms CPU per report)")
    print(f"{'total with rendering':20} {'':>18} {(ours + rendering_cpu) * 1000 / n:>14.2f}")
    print(
        f"idle pass of the four loops: {idle.statements} statements, {idle.cpu * 1000:.2f} ms CPU, "
        f"{idle_wall * 1000:.1f} ms wall (every {config['DISPATCH_INTERVAL_SECONDS']} s): "
        + ", ".join(f"{name} {count} / {cpu:.2f} ms" for name, (count, cpu) in idle_each.items())
    )
    _check(sessions, server, args.p7)
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        print("idle pass:")
        pstats.Stats(idle_profiler).sort_stats("cumulative").print_stats(30)


def _sent_channels(p7: bool) -> tuple[str, ...]:
    """The channels the worker sends on: in P7 the deliveries wait for MSSanté to be configured."""
    return ("email",) if p7 else ("email", "mssante")


def _warm_up(sessions, tmp: str, zone: str) -> None:
    """One report rendered aside first: what a worker's process does once (fpdf2's import, the font parsed and cut
    to the usual glyphs: ~0.4 s) is not charged to the reports, as it is not over P7's hour."""
    with sessions() as session:
        frozen = session.scalar(select(Report.frozen_content).where(awaiting_rendering()).limit(1))
    reports.render_frozen(json.loads(frozen), Path(f"{tmp}/warm-up"), zone=zone)


def _left(sessions, p7: bool) -> int:
    with sessions() as session:
        waiting = select(func.count()).where(
            OutboxMessage.channel.in_(_sent_channels(p7)),
            OutboxMessage.state.in_((OutboxState.PENDING, OutboxState.SENDING)),
        )
        return session.scalar(waiting) + session.scalar(select(func.count()).where(awaiting_rendering()))


def _check(sessions, server, p7: bool) -> None:
    with sessions() as session:
        emails = session.execute(
            select(OutboxMessage.state, func.count())
            .where(OutboxMessage.channel.in_(_sent_channels(p7)))
            .group_by(OutboxMessage.state)
        ).all()
    received = server.message_ids()
    sent = dict(emails).get(OutboxState.SENT, 0)
    twice = [k for k, v in received.items() if v > 1]
    print(
        f"e-mails and MSSanté messages by state {dict(emails)}; "
        f"received by the sink {sum(received.values())}, twice {len(twice)}"
    )
    assert sum(received.values()) == sent and not twice


if __name__ == "__main__":
    main()
