"""Command line: `flask --app wsgi hub demo | worker | audit verify | outbox status`, `flask --app wsgi db upgrade |
downgrade`."""

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from hub import audit, migrate
from hub.db import session_scope, utcnow
from hub.errors import Conflict
from hub.formatting import waiting_since
from hub.models import Organisation, OrganisationKind
from hub.services import audit_chain, outbox_messages

hub_cli = AppGroup("hub", help="Commandes du hub CPTS.")
audit_cli = AppGroup("audit", help="Journal d'audit.")
outbox_cli = AppGroup("outbox", help="File d'envoi (outbox).")
hub_cli.add_command(audit_cli)
hub_cli.add_command(outbox_cli)


def _sessions():
    return current_app.extensions["hub.sessions"]


@hub_cli.command("demo")
@click.option(
    "--i-know-this-is-not-production",
    "outside_development",
    is_flag=True,
    help="Charger la démonstration hors développement (HUB_ENV) : jamais sur un hub en service.",
)
def demo_command(outside_development):
    """Load the demo territory (CPTS VIVEVAL), idempotently, and print its logins."""
    env = current_app.config["HUB"]["ENV"]
    # Its fifty accounts share a published password and TOTP keys derived from their logins: on a hub in
    # service they would be open doors, so anything but development must say it knowingly.
    if env != "development" and not outside_development:
        click.echo(
            f"Refusé : la démonstration crée des comptes au mot de passe public, et HUB_ENV vaut « {env} ». "
            "Elle ne se charge qu'en développement (HUB_ENV=development, comme `make run`), ou avec "
            "--i-know-this-is-not-production sur une base qui n'est pas en service.",
            err=True,
        )
        raise SystemExit(2)
    from hub.db import utcnow
    from hub.demo import format_summary, load_demo, load_demo_schedule

    with session_scope(_sessions()) as session:
        zone = current_app.config["HUB"]["TIMEZONE"]
        summary = load_demo(session, zone=zone)
        load_demo_schedule(session, summary.cpts_id, now=utcnow(), zone=zone)
    click.echo(format_summary(summary))


@audit_cli.command("verify")
def audit_verify_command():
    """Chain the pending audit rows, then walk the chain and its checkpoints; exit 1 if a row or a link was
    changed or deleted, the tail cut off, or a row left unchained — or if rows still wait past
    hub.audit.PENDING_STALL, which this command's own chaining could not link."""
    try:
        run = audit_chain.verify_now(_sessions(), current_app.config["HUB"])
    except Conflict as error:
        click.echo(error.detail, err=True)
        raise SystemExit(2) from error
    # In the log too: the administrator's page shows the last verification, whoever ran it.
    with session_scope(_sessions()) as session:
        audit_chain.record_verification(session, "flask hub audit verify", run)
    linked, result = run.linked, run.result
    for item in result.breaks:
        where = f"rupture au maillon {item.seq}" if item.seq is not None else "rupture"
        click.echo(f"{where} : {item.reason}", err=True)
    summary = (
        f"{result.length} maillon(s), dont {linked} ajouté(s) à l'instant ; "
        f"{result.checkpoints} point(s) de contrôle ; {result.pending} événement(s) en attente d'enchaînement."
    )
    if result.breaks:
        click.echo(f"Journal d'audit altéré : {len(result.breaks)} rupture(s). {summary}", err=True)
        raise SystemExit(1)
    if result.stalled:
        click.echo(
            f"Enchaînement arrêté : des lignes attendent depuis {result.oldest_pending_at:%Y-%m-%d %H:%M} UTC et "
            f"n'ont pas pu être enchaînées. {summary}",
            err=True,
        )
        raise SystemExit(1)
    click.echo(f"Journal d'audit intègre : {summary}")


# `flask hub outbox status`'s exit codes, a Nagios plugin's: its one line on stdout is what the monitoring shows.
OK, WARNING, UNKNOWN = 0, 1, 3


@outbox_cli.command("status")
@click.option("--cpts", "cpts_id", type=int, help="Une seule CPTS (son id) ; par défaut tout le hub.")
def outbox_status_command(cpts_id):
    """The messages due that no worker has taken yet, and since when the oldest waits, in one line on stdout; for a
    cron job or a monitoring probe, exit 0 (OK), 1 (WARNING: past HUB_OUTBOX_ALERT_MINUTES, the worker is behind or
    stopped) or 3 (UNKNOWN: the database cannot be read, or no such CPTS)."""
    scope = f"CPTS {cpts_id}" if cpts_id is not None else "hub"
    try:
        with session_scope(_sessions()) as session:
            organisation = session.get(Organisation, cpts_id) if cpts_id is not None else None
            known = cpts_id is None or (organisation is not None and organisation.kind is OrganisationKind.CPTS)
            backlog = outbox_messages.backlog(session, cpts_id, now=utcnow()) if known else None
    except SQLAlchemyError as error:
        # Not WARNING: a monitoring probe must not read an unreachable database as a late worker.
        # The driver's message alone (SQLAlchemy's adds the statement and a link), first line: a one-line status.
        reason = (str(getattr(error, "orig", None) or error).splitlines() or [""])[0]
        click.echo(
            f"Envois : état inconnu ({scope}), la base de données ne répond pas : {type(error).__name__}: {reason}"
        )
        raise SystemExit(UNKNOWN) from error
    if backlog is None:
        # A typo or a deleted CPTS would otherwise answer « à jour » for ever.
        click.echo(f"Envois : état inconnu, la CPTS {cpts_id} n'existe pas (`--cpts` attend l'id d'une CPTS).")
        raise SystemExit(UNKNOWN)
    alert_after = outbox_messages.alert_after(current_app.config["HUB"])
    threshold = f"seuil {alert_after.total_seconds() // 60:.0f} min"
    if not backlog.waiting:
        click.echo(f"Envois à jour ({scope}) : aucun message dû en attente du worker ({threshold}).")
        return
    summary = (
        f"{backlog.waiting} message(s) dû(s) en attente du worker ({scope}), le plus ancien "
        f"{waiting_since(backlog.age)}, dû le {backlog.oldest_due_at:%Y-%m-%d %H:%M} UTC ({threshold})"
    )
    if backlog.is_late(alert_after):
        click.echo(
            f"Envois en retard : {summary}. Le worker est en retard ou arrêté (`flask hub worker`) ; "
            "les messages ne sont pas perdus, ils partiront à sa reprise."
        )
        raise SystemExit(WARNING)
    click.echo(f"Envois à jour : {summary}.")


@hub_cli.command("worker")
def worker_command():
    """Run the scheduler (periodic jobs, under a singleton lease) and the outbox dispatcher; SIGTERM stops it."""
    import datetime as dt
    import functools
    import logging
    import signal
    from zoneinfo import ZoneInfo

    from connectors.dispatcher import drain
    from connectors.mdn import ImapSettings
    from connectors.registry import build_registry
    from hub.http.request import upload_dir
    from scheduling.periodic import JobContext
    from scheduling.runner import Worker
    from workflows.deliveries import follow_deliveries
    from workflows.jobs import PERIODIC_JOBS
    from workflows.reports import render_pending

    config = current_app.config["HUB"]
    sessions = _sessions()
    connectors = build_registry(config)
    context = JobContext(sessions, ZoneInfo(config["TIMEZONE"]))
    outbox_lease = dt.timedelta(seconds=config["OUTBOX_LEASE_SECONDS"])
    worker = Worker(
        sessions,
        jobs=PERIODIC_JOBS,
        context=context,
        loops=[
            # The signed reports' PDF and CDA, then their deliveries: before the dispatcher, which sends them.
            functools.partial(render_pending, sessions, upload_dir=upload_dir(), zone=config["TIMEZONE"]),
            functools.partial(drain, sessions, connectors=connectors, lease=outbox_lease),
            # Deliveries follow their messages; MDNs are read when the applicative mailbox is configured.
            functools.partial(
                follow_deliveries, sessions, mdn_settings=config if ImapSettings.from_settings(config) else None
            ),
            # The audit sequencer: the leader alone runs it (and its advisory lock would keep a second one out).
            functools.partial(
                audit.run_sequencer,
                sessions,
                key=audit.key_bytes(config),
                checkpoint_file=audit.checkpoint_path(config),
            ),
        ],
        lease_ttl=dt.timedelta(seconds=config["WORKER_LEASE_SECONDS"]),
        loop_interval=dt.timedelta(seconds=config["DISPATCH_INTERVAL_SECONDS"]),
    )
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per dispatcher run
    channels = ", ".join(sorted(connectors)) or "aucun"
    click.echo(f"Worker {worker.holder} démarré ; canaux configurés : {channels}.")
    worker.run()
    click.echo(f"Worker {worker.holder} arrêté.")


def make_db_cli() -> AppGroup:
    db_cli = AppGroup("db", help="Migrations de la base (Alembic).")

    def owner():
        # Migrations run as the tables' owner (HUB_DATABASE_OWNER_URL), the application as a role that is not.
        config = current_app.config["HUB"]
        return migrate.owner_engine(current_app.extensions["hub.engine"], config["DATABASE_OWNER_URL"])

    @db_cli.command("upgrade")
    @click.argument("revision", default="head")
    def upgrade(revision):
        with owner() as engine:
            migrate.upgrade(engine, revision, app_role=current_app.config["HUB"]["DATABASE_APP_ROLE"])

    @db_cli.command("downgrade")
    @click.argument("revision", default="-1")
    def downgrade(revision):
        with owner() as engine:
            migrate.downgrade(engine, revision)

    @db_cli.command("revision")
    @click.option("-m", "--message", required=True)
    @click.option("--empty", is_flag=True, help="Do not compare the models with the database.")
    def revision(message, empty):
        with owner() as engine:
            migrate.revision(engine, message, autogenerate=not empty)

    return db_cli
