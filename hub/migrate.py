"""Run Alembic from code (the CLI, the tests) on a given engine, and grant the application's role its rights."""

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from hub.config import PROJECT_ROOT
from hub.db import make_engine

# The application may append to these and read them, nothing else: tamper evidence against its own credentials.
APPEND_ONLY_TABLES = ("audit_events", "audit_chain")


def alembic_config(engine: Engine, *, app_role: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["engine"] = engine
    config.attributes["app_role"] = app_role
    return config


def _run(engine: Engine, fn, *args, app_role: str | None = None, **kwargs) -> None:
    config = alembic_config(engine, app_role=app_role)
    # Not engine.begin(): alembic owns the transactions (migrations/env.py), so that a migration's autocommit block
    # can commit the ones before it.
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        fn(config, *args, **kwargs)


def upgrade(engine: Engine, revision: str = "head", *, app_role: str | None = None) -> None:
    """Migrate (as the tables' owner); on PostgreSQL, then grant `app_role` the application's rights."""
    _run(engine, command.upgrade, revision, app_role=app_role)


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, command.downgrade, revision)


def revision(engine: Engine, message: str, *, autogenerate: bool = True) -> None:
    _run(engine, command.revision, message=message, autogenerate=autogenerate)


def grant_application_role(connection: Connection, role: str) -> None:
    """The application's role (PostgreSQL): read and write every table, but only INSERT and SELECT the audit
    tables, use the sequences, and not touch the migrations' bookkeeping. It owns nothing, so it can neither
    drop nor alter a table, nor disable the audit tables' append-only triggers."""
    name = connection.dialect.identifier_preparer.quote(role)
    connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {name}"))
    connection.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}"))
    connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}"))
    # Tables a later migration creates are the application's too, even when that upgrade is run without the role
    # configured (an `alembic upgrade` by hand): otherwise every page touching one would fail until the next grant.
    connection.execute(
        text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {name}")
    )
    connection.execute(text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {name}"))
    present = set(
        connection.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(:names)"),
            {"names": [*APPEND_ONLY_TABLES, "alembic_version"]},
        )
    )
    for table in APPEND_ONLY_TABLES:
        if table in present:  # a downgrade may have dropped one
            connection.execute(text(f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {table} FROM {name}"))
    if "alembic_version" in present:
        connection.execute(text(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {name}"))


@contextmanager
def owner_engine(app_engine: Engine, owner_url: str | None) -> Iterator[Engine]:
    """The engine migrations run with: the owner's URL when it is not the application's."""
    if not owner_url or owner_url == app_engine.url.render_as_string(hide_password=False):
        yield app_engine
        return
    engine = make_engine(owner_url)
    try:
        yield engine
    finally:
        engine.dispose()
