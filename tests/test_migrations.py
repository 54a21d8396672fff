"""Migrations upgrade, downgrade and upgrade again, on a database of their own (SQLite or PostgreSQL)."""

import os
import uuid

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from hub import migrate
from hub.db import Base, make_engine


@pytest.fixture
def scratch_engine(tmp_path):
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        engine = make_engine(f"sqlite:///{tmp_path}/migrations.sqlite3")
        yield engine
        engine.dispose()
        return
    name = f"hub_migrations_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(url).set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}"'))
    admin.dispose()


def tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(scratch_engine):
    migrate.upgrade(scratch_engine)
    assert tables(scratch_engine) == set(Base.metadata.tables)
    migrate.downgrade(scratch_engine, "base")
    assert tables(scratch_engine) == set()
    migrate.upgrade(scratch_engine)
    assert tables(scratch_engine) == set(Base.metadata.tables)


def test_models_and_migrations_agree(scratch_engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    migrate.upgrade(scratch_engine)
    with scratch_engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []
