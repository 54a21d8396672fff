"""Alembic environment: batch mode on SQLite; lock and statement timeouts on PostgreSQL; the application's
role granted its rights after the migrations (PostgreSQL, when one is configured).

The connection is handed in by hub.migrate (config.attributes["connection"]) or built from
HUB_DATABASE_OWNER_URL (else HUB_DATABASE_URL) when alembic is called directly: migrations run as the owner.
"""

import os

from alembic import context
from sqlalchemy import text

import hub.models  # noqa: F401  (registers every table on the metadata)
from hub.config import DEFAULTS, resolve_database_url
from hub.db import Base, make_engine
from hub.migrate import grant_application_role

target_metadata = Base.metadata


def _configure_and_run(connection) -> None:
    if connection.dialect.name == "postgresql":
        # A migration waits at most 5 s for a lock rather than queueing every request behind it.
        connection.execute(text("SET lock_timeout = '5s'"))
        connection.execute(text("SET statement_timeout = '5min'"))
        # Session settings outlive this commit, which leaves the transactions to alembic: a migration's autocommit
        # block (CREATE INDEX CONCURRENTLY) cannot leave a transaction it does not own.
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    app_role = context.config.attributes.get("app_role") or os.environ.get("HUB_DATABASE_APP_ROLE")
    if app_role and connection.dialect.name == "postgresql":
        grant_application_role(connection, app_role)
    connection.commit()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = os.environ.get("HUB_DATABASE_OWNER_URL") or os.environ.get("HUB_DATABASE_URL", DEFAULTS["DATABASE_URL"])
    url = resolve_database_url(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        _configure_and_run(conn)
    engine.dispose()


run_migrations_online()
