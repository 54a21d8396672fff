"""Migrations upgrade, downgrade and upgrade again, on a database of their own (SQLite or PostgreSQL)."""

import os
import uuid

import pytest
from sqlalchemy import event, inspect, text
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


def test_rows_of_the_unkeyed_chain_are_rechained_by_the_sequencer_and_back(scratch_engine):
    """4a7c2e9d1f38 drops the request-made chain; the sequencer links the existing rows with its HMAC, and the
    downgrade rebuilds the old chain."""
    import datetime as dt

    from hub import audit
    from hub.db import make_session_factory

    migrate.upgrade(scratch_engine, "9f3e2b7c1a64")
    postgresql = scratch_engine.dialect.name == "postgresql"
    at = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    with scratch_engine.begin() as conn:
        for seq in (1, 2, 3):
            conn.execute(
                text(
                    "INSERT INTO audit_events (seq, occurred_at, actor_label, action, outcome, details, prev_hash,"
                    " hash) VALUES (:seq, :at, 'old', 'patient.read', 'success', '{}', :prev, :hash)"
                ),
                {"seq": seq, "at": at if postgresql else "2026-12-01 09:00:00.000000", "prev": "p", "hash": f"h{seq}"},
            )
    migrate.upgrade(scratch_engine)
    factory = make_session_factory(scratch_engine)
    linked, result = audit.seal_and_verify(factory, key=audit.DEVELOPMENT_KEY)
    assert (linked, result.length, result.breaks) == (3, 3, [])
    migrate.downgrade(scratch_engine, "9f3e2b7c1a64")
    with scratch_engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, prev_hash, hash FROM audit_events ORDER BY id")).all()
    assert [row.seq for row in rows] == [1, 2, 3]
    assert rows[0].prev_hash == "0" * 64 and [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]


def test_the_upgrade_grants_the_application_role_its_rights(scratch_engine):
    """`flask db upgrade` with HUB_DATABASE_APP_ROLE: the role may write the hub's tables but only append to the
    audit tables."""
    from sqlalchemy.exc import DBAPIError

    if scratch_engine.dialect.name != "postgresql":
        pytest.skip("roles are PostgreSQL's")
    role = f"hub_app_migrations_{uuid.uuid4().hex[:8]}"
    with scratch_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
    app_engine = make_engine(scratch_engine.url.set(username=role).render_as_string(hide_password=False))
    try:
        migrate.upgrade(scratch_engine, app_role=role)
        with app_engine.begin() as conn:
            assert conn.scalar(text("SELECT count(*) FROM audit_chain")) == 0
            conn.execute(text("UPDATE outbox_messages SET attempts = attempts WHERE false"))
        with app_engine.connect() as conn, pytest.raises(DBAPIError, match="permission denied"):
            conn.execute(text("DELETE FROM audit_events"))
        with app_engine.connect() as conn, pytest.raises(DBAPIError, match="permission denied"):
            conn.execute(text("UPDATE alembic_version SET version_num = 'x'"))
    finally:
        app_engine.dispose()
        with scratch_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))


def test_the_outbox_backlog_index_is_built_without_blocking_writes(scratch_engine):
    """On PostgreSQL, ix_outbox_messages_cpts_in_flight is built and dropped CONCURRENTLY, outside any transaction:
    a plain CREATE INDEX would hold writes to outbox_messages (every booking, report, reminder) for its whole scan.
    The leftover of an interrupted build, invalid, is built again."""
    if scratch_engine.dialect.name != "postgresql":
        pytest.skip("concurrent index builds are PostgreSQL's")

    name = "ix_outbox_messages_cpts_in_flight"
    seen: list[tuple[str, bool]] = []

    def record(conn, _cursor, statement, *_args):
        if name in statement:
            seen.append((" ".join(statement.split()), conn.connection.dbapi_connection.autocommit))

    migrate.upgrade(scratch_engine, "e8a4c2f6b1d3")
    with scratch_engine.begin() as conn:  # an interrupted concurrent build's leftover
        conn.execute(text(f"CREATE INDEX {name} ON outbox_messages (cpts_id)"))
        conn.execute(
            text("UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(:name)"), {"name": name}
        )
    event.listen(scratch_engine, "before_cursor_execute", record)
    try:
        migrate.upgrade(scratch_engine, "a3f7c1e9d2b4")
        migrate.downgrade(scratch_engine, "e8a4c2f6b1d3")
    finally:
        event.remove(scratch_engine, "before_cursor_execute", record)
    ddl = [(statement.split(" ON ")[0], autocommit) for statement, autocommit in seen if "pg_index" not in statement]
    assert ddl == [
        (f"DROP INDEX CONCURRENTLY {name}", True),
        (f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name}", True),
        (f"DROP INDEX CONCURRENTLY IF EXISTS {name}", True),
    ], seen
    migrate.upgrade(scratch_engine)
    with scratch_engine.connect() as conn:
        assert conn.scalar(
            text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": name}
        )


REDUNDANT_INDEXES = {  # dropped by b8d2e4f6a1c3 → the index that serves their lookups instead
    "ix_slots_program_time": ("slots", "uq_slots_program_start"),
    "ix_visit_offers_appointment_id": ("visit_offers", "uq_visit_offers_pair"),
    "ix_reports_root_id": ("reports", "uq_reports_root_version"),
    "ix_patients_cpts_id": ("patients", "uq_patients_cpts_ins"),
    "ix_teleexpertise_requests_cpts_id": ("teleexpertise_requests", "ix_teleexpertise_requests_cpts_submitted"),
}


def index_names(engine, table: str) -> set[str]:
    inspector = inspect(engine)
    names = {index["name"] for index in inspector.get_indexes(table)}
    return names | {constraint["name"] for constraint in inspector.get_unique_constraints(table)}


def test_the_redundant_indexes_are_dropped_and_their_covering_ones_kept(scratch_engine):
    """b8d2e4f6a1c3 drops the five indexes another index of their table leads with; downgrade builds them again.
    On PostgreSQL both run CONCURRENTLY, outside any transaction: a plain DROP INDEX locks out every reader of
    slots, reports or patients until it gets its ACCESS EXCLUSIVE lock."""
    seen: list[tuple[str, bool]] = []

    def record(conn, _cursor, statement, *_args):
        if any(name in statement for name in REDUNDANT_INDEXES):
            autocommit = getattr(conn.connection.dbapi_connection, "autocommit", None)  # psycopg's; not sqlite3's
            seen.append((" ".join(statement.split()).split(" ON ")[0], autocommit))

    migrate.upgrade(scratch_engine, "a3f7c1e9d2b4")
    event.listen(scratch_engine, "before_cursor_execute", record)
    try:
        migrate.upgrade(scratch_engine, "b8d2e4f6a1c3")
        for name, (table, covering) in REDUNDANT_INDEXES.items():
            assert {name, covering} & index_names(scratch_engine, table) == {covering}
        if scratch_engine.dialect.name == "postgresql":
            leave_an_interrupted_build(scratch_engine, "ix_slots_program_time", "slots (program_id)")
        migrate.downgrade(scratch_engine, "a3f7c1e9d2b4")
        for name, (table, _covering) in REDUNDANT_INDEXES.items():
            assert name in index_names(scratch_engine, table)
    finally:
        event.remove(scratch_engine, "before_cursor_execute", record)
    if scratch_engine.dialect.name == "postgresql":
        rebuilt = [("DROP INDEX CONCURRENTLY ix_slots_program_time", True)] + [
            (f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name}", True) for name in REDUNDANT_INDEXES
        ]
        ddl = [entry for entry in seen if "pg_index" not in entry[0] and not entry[0].startswith("CREATE INDEX ix")]
        assert ddl == [(f"DROP INDEX CONCURRENTLY IF EXISTS {name}", True) for name in REDUNDANT_INDEXES] + rebuilt
        with scratch_engine.connect() as conn:  # the interrupted build's leftover was built again, valid
            assert conn.scalar(
                text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('ix_slots_program_time')")
            )


def leave_an_interrupted_build(engine, name: str, target: str) -> None:
    """What a CREATE INDEX CONCURRENTLY cancelled by its lock timeout leaves: an INVALID index of that name."""
    with engine.begin() as conn:
        conn.execute(text(f"CREATE INDEX {name} ON {target}"))
        conn.execute(
            text("UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(:name)"), {"name": name}
        )


def test_the_appointments_professional_indexes_lead_to_their_time(scratch_engine):
    """c4e6a8b0d2f1 replaces the performer's and the accompanying IDEL's single-column indexes by (column, starts_at),
    built concurrently on PostgreSQL (an interrupted build's INVALID leftover built again); downgrade restores them."""
    replaced = {
        "ix_appointments_performer_time": "ix_appointments_performer_id",
        "ix_appointments_accompanying_time": "ix_appointments_accompanying_id",
    }
    migrate.upgrade(scratch_engine, "b8d2e4f6a1c3")
    if scratch_engine.dialect.name == "postgresql":
        leave_an_interrupted_build(scratch_engine, "ix_appointments_performer_time", "appointments (performer_id)")
    migrate.upgrade(scratch_engine, "c4e6a8b0d2f1")
    names = index_names(scratch_engine, "appointments")
    assert set(replaced) <= names and not set(replaced.values()) & names
    columns = {index["name"]: index["column_names"] for index in inspect(scratch_engine).get_indexes("appointments")}
    assert columns["ix_appointments_performer_time"] == ["performer_id", "starts_at"]
    if scratch_engine.dialect.name == "postgresql":
        with scratch_engine.connect() as conn:
            assert conn.scalar(
                text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('ix_appointments_performer_time')")
            )
    migrate.downgrade(scratch_engine, "b8d2e4f6a1c3")
    names = index_names(scratch_engine, "appointments")
    assert set(replaced.values()) <= names and not set(replaced) & names


# The step run again → (where it starts, the index it built before it stopped, the one it left INVALID, the columns
# the step gives that one).
RERUNS = {
    "c4e6a8b0d2f1 upgrade": (
        "b8d2e4f6a1c3",
        lambda engine: migrate.upgrade(engine, "c4e6a8b0d2f1"),
        ("ix_appointments_performer_time", "appointments (performer_id, starts_at)"),
        ("ix_appointments_accompanying_time", "appointments (accompanying_id)"),
        "(accompanying_id, starts_at)",
    ),
    "b8d2e4f6a1c3 downgrade": (
        "b8d2e4f6a1c3",
        lambda engine: migrate.downgrade(engine, "a3f7c1e9d2b4"),
        ("ix_slots_program_time", "slots (program_id, starts_at)"),
        ("ix_reports_root_id", "reports (root_id)"),
        "(root_id)",
    ),
}


def index_state(engine, name: str) -> tuple[int, bool]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT indexrelid::bigint, indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
            {"name": name},
        ).one()
    return row[0], row[1]


@pytest.mark.parametrize("step", RERUNS)
def test_a_rerun_keeps_the_valid_index_it_built_and_builds_the_invalid_one_again(scratch_engine, step):
    """Run again after an interruption, a step that builds indexes concurrently keeps the one it had already built
    valid (the same index, not dropped and rebuilt on a hot table) and builds again the INVALID leftover."""
    if scratch_engine.dialect.name != "postgresql":
        pytest.skip("concurrent index builds are PostgreSQL's")
    start, run, (valid, valid_on), (invalid, invalid_on), columns = RERUNS[step]
    migrate.upgrade(scratch_engine, start)
    with scratch_engine.begin() as conn:
        conn.execute(text(f"CREATE INDEX {valid} ON {valid_on}"))
    leave_an_interrupted_build(scratch_engine, invalid, invalid_on)
    kept, leftover = index_state(scratch_engine, valid), index_state(scratch_engine, invalid)
    run(scratch_engine)
    assert index_state(scratch_engine, valid) == kept
    oid, is_valid = index_state(scratch_engine, invalid)
    assert is_valid and oid != leftover[0]
    with scratch_engine.connect() as conn:
        definition = conn.scalar(text("SELECT pg_get_indexdef(to_regclass(:name))"), {"name": invalid})
    assert definition.endswith(columns), definition
