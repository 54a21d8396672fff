"""The statements run by the driver itself (hub.db.driver_rows, driver_execute, the light read's path, P1): the same
values as SQLAlchemy's execution, SQL compiled for the engine it runs on, the engine's cursor events in pairs, and a
disconnect's retry that keeps the queued audit rows and nothing else."""

from decimal import Decimal
from types import SimpleNamespace

import psycopg as psycopg_driver
import pytest
from sqlalchemy import Float, Numeric, bindparam, cast, event, literal, select, update
from sqlalchemy.dialects.postgresql import psycopg, psycopg2
from sqlalchemy.exc import DBAPIError

from hub import audit, row_locks
from hub.db import (
    CachingCursor,
    _convert_long,
    _prepare,
    _retrying,
    driver_rows,
    is_autocommitting,
    make_engine,
    make_session_factory,
    read_rows,
    utcnow,
    without_transaction,
)
from hub.models import Patient

# Built once, as the statements given to driver_rows are. Numeric and Float take their result processor from the
# type the driver reports (on PostgreSQL: Decimal or float by the column's type code, an error without it).
_AMOUNTS = select(
    cast(literal(Decimal("12.34")), Numeric(10, 2)).label("fee"),
    cast(literal(Decimal("0.20")), Numeric(5, 2, asdecimal=False)).label("share"),
    cast(literal(1.5), Float).label("ratio"),
    cast(literal(2.25), Float(asdecimal=True)).label("exact"),
)


def test_numeric_and_float_columns_read_as_sqlalchemy_s(db_session):
    expected = [tuple(row) for row in read_rows(db_session, _AMOUNTS, {})]
    for _ in range(2):  # the processors worked out at the first execution, then reused
        rows = driver_rows(db_session, _AMOUNTS, {})
        assert [tuple(row) for row in rows] == expected
        assert [type(value) for value in rows[0]] == [type(value) for value in expected[0]]
    assert expected[0] == (Decimal("12.34"), 0.2, 1.5, Decimal("2.25"))


def test_a_write_s_returned_columns_read_by_name(db_session, territory):
    """An UPDATE … RETURNING (as the idempotency claim's INSERT … RETURNING) gives its rows, by name and position, as
    a SELECT does. Its columns' defaults and onupdate values are the caller's to give (no SQLAlchemy execution)."""
    table = Patient.__table__
    statement = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(used_last_name=bindparam("name"), updated_at=bindparam("now"))
        .returning(table.c.id)
    )
    rows = driver_rows(db_session, statement, {"row_id": territory.patient.id, "name": "Martin", "now": utcnow()})
    assert [(row.id, row[0]) for row in rows] == [(territory.patient.id, territory.patient.id)]


def test_the_sql_is_compiled_for_the_driver_and_the_server_it_runs_on():
    statement = select(Patient.id).where(Patient.id == 1)
    first, other_driver, newer = psycopg.dialect(), psycopg2.dialect(), psycopg.dialect()
    first.server_version_info, other_driver.server_version_info, newer.server_version_info = (15,), (15,), (17,)
    prepared = _prepare(statement, first, None)
    assert _prepare(statement, psycopg.dialect(), None) is not prepared  # no server version known yet
    assert _prepare(statement, other_driver, None) is not prepared
    assert _prepare(statement, newer, None) is not prepared
    same = psycopg.dialect()
    same.server_version_info = (15,)
    assert _prepare(statement, same, None) is prepared


def test_the_engine_s_cursor_events_come_in_pairs(db_session, engine, gp):
    """A statement log or timer (bench.booking.StatementLog, an APM hook) sees each driver statement end: a read's
    SELECT and its audit INSERT."""
    seen: list[str] = []

    def before(_conn, _cursor, statement, *_args):
        seen.append("before " + statement.split()[0])

    def after(_conn, _cursor, statement, *_args):
        seen.append("after " + statement.split()[0])

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        driver_rows(db_session, _AMOUNTS, {})
        audit.record(db_session, actor=gp, action="test.events")
        audit.write_pending(db_session)
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    assert seen == ["before SELECT", "after SELECT", "before INSERT", "after INSERT"]


def test_a_retry_without_transaction_keeps_the_queued_audit_rows_not_the_row_locks(engine):
    """The retry rolls back, which releases every lock taken: the session's marks of locked rows must not come back,
    while its audit rows queued for the end of the request must."""
    session = make_session_factory(engine)()
    locked = SimpleNamespace(id=1)
    try:
        without_transaction(session)
        queued = audit.record(session, actor="test", action="test.retry")
        row_locks.mark(session, locked)
        attempts: list[int] = []

        def run() -> int:
            attempts.append(1)
            if len(attempts) == 1:
                raise DBAPIError(
                    "SELECT 1", None, Exception("server closed the connection"), connection_invalidated=True
                )
            return 7

        assert _retrying(session, run) == 7
        assert session.info[audit._PENDING] == [queued]
        assert not row_locks.held(session, locked)
    finally:
        session.close()


def test_a_light_read_s_connection_goes_back_to_the_pool_out_of_autocommit(engine):
    """`without_transaction` puts the driver's connection in autocommit itself (not by SQLAlchemy's isolation_level
    option): the pool must take it back out before the next checkout, whose statements then run in a transaction
    that a rollback undoes. An engine made in AUTOCOMMIT keeps its connections so."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's light reads leave out the BEGIN (hub.db._NO_BEGIN), they have no autocommit to reset")
    one = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    try:
        factory = make_session_factory(one)
        with factory() as session:
            without_transaction(session)
            driver_rows(session, select(literal(1).label("one")), {})
            light = session.connection().connection.dbapi_connection
            assert light.autocommit and is_autocommitting(session)
        with factory() as session:
            session.execute(select(literal(1)))
            pooled = session.connection().connection.dbapi_connection
            assert pooled is light
            assert not pooled.autocommit and not is_autocommitting(session)
            assert pooled.info.transaction_status == psycopg_driver.pq.TransactionStatus.INTRANS
            session.rollback()
    finally:
        one.dispose()
    admin = make_engine(engine.url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT", pool_size=1)
    try:
        for _ in range(2):
            with admin.connect() as connection:
                assert connection.connection.dbapi_connection.autocommit
    finally:
        admin.dispose()


def test_the_cursor_s_description_is_read_at_a_statement_s_first_execution_only(db_session, monkeypatch):
    """psycopg builds its description anew at each access, one object per column: read at every execution it cost
    about 30 µs of a patient read's CPU (its 33 columns, P1). The values stay SQLAlchemy's (the test above)."""
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("sqlite3's description is a plain attribute")
    reads: list[int] = []
    described = CachingCursor.description

    def counted(cursor):
        reads.append(1)
        return described.fget(cursor)

    db_session.connection()  # its SAVEPOINT, run by SQLAlchemy, reads its own description
    # On the class: the driver's cursor is made once per connection (hub.db._driver_cursor), maybe before this test.
    monkeypatch.setattr(CachingCursor, "description", property(counted))
    statement = select(literal(1).label("one"), cast(literal(Decimal("1.5")), Numeric(4, 1)).label("fee"))
    for _ in range(3):
        assert [tuple(row) for row in driver_rows(db_session, statement, {})] == [(1, Decimal("1.5"))]
    assert len(reads) == 1


def test_the_driver_s_statements_share_one_cursor_per_connection_until_it_is_replaced(engine):
    """driver_execute keeps one cursor per DBAPI connection (hub.db._driver_cursor) rather than making and closing
    one per statement (~10 µs of CPU each): a connection's statements, in one request or the next, run on it, and
    the connection that replaces an invalidated one (a disconnect) gets its own."""
    one = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    cursors: list = []

    def seen(_conn, cursor, _statement, _parameters, context, _many):
        if context is None:  # the driver's path; SQLAlchemy's own statements (SQLite's BEGIN) have a context
            cursors.append(cursor)

    event.listen(one, "before_cursor_execute", seen)
    statement = select(literal(1).label("one"))
    try:
        factory = make_session_factory(one)
        for _ in range(2):
            with factory() as session:
                for _ in range(2):
                    assert [tuple(row) for row in driver_rows(session, statement, {})] == [(1,)]
        with factory() as session:
            session.connection().invalidate()
        with factory() as session:
            assert [tuple(row) for row in driver_rows(session, statement, {})] == [(1,)]
    finally:
        one.dispose()
    assert len(cursors) == 5
    assert all(cursor is cursors[0] for cursor in cursors[:4])
    assert cursors[4] is not cursors[0]


def test_a_long_statement_with_many_parameters_is_parsed_once(db_session, engine):
    """psycopg parses a statement over 4 kB or 50 parameters again at every execution; the engine's cursor keeps
    its conversion (hub.db.CachingCursor), as a booking's read and write need, and binds each execution's values."""
    if engine.dialect.name != "postgresql":
        pytest.skip("psycopg's conversion of placeholders: PostgreSQL's driver")
    values = [literal(i).label(f"value_with_a_long_name_to_pass_four_kilobytes_{i}") for i in range(60)]
    statement = select(*values)
    connection = db_session.connection()
    assert len(str(statement.compile(connection))) > 4096
    before = _convert_long.cache_info()
    for _ in range(3):
        assert tuple(connection.execute(statement).one()) == tuple(range(60))
    after = _convert_long.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)
    assert isinstance(connection.connection.dbapi_connection.cursor(), CachingCursor)


def test_sqlalchemy_s_executions_build_the_description_s_columns_once_per_statement(db_session, monkeypatch):
    """SQLAlchemy asks for the description at every execution but reads its columns only to build a statement's
    result metadata (kept with the compiled statement): the engine's cursor builds them only when read
    (hub.db.CachingCursor), ~10 % of the P7 mix's profiled CPU when built at every execution."""
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("sqlite3's description is a plain attribute")
    built: list[int] = []

    class CountingColumn(psycopg_driver.Column):
        def __init__(self, cursor, index):
            built.append(index)
            super().__init__(cursor, index)

    monkeypatch.setattr(psycopg_driver, "Column", CountingColumn)
    statement = select(literal(1).label("one"), cast(literal(Decimal("1.5")), Numeric(4, 1)).label("fee"))
    connection = db_session.connection()
    for _ in range(3):
        assert tuple(connection.execute(statement).one()) == (1, Decimal("1.5"))
    assert built == [0, 1]


def test_a_description_read_late_describes_its_own_result(db_session):
    """The columns are built from the result the description was asked for, as psycopg's own, even after the
    cursor ran another statement."""
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("psycopg's description")
    dbapi_connection = db_session.connection().connection.dbapi_connection
    cursor = dbapi_connection.cursor()
    assert isinstance(cursor, CachingCursor)
    reference = psycopg_driver.Cursor(dbapi_connection)
    sql = "SELECT 1::int AS a, 'x'::text AS b, 1.5::numeric(4, 1) AS c"
    cursor.execute(sql)
    reference.execute(sql)
    description = cursor.description
    cursor.execute("SELECT now() AS other")
    assert [tuple(column) for column in description] == [tuple(column) for column in reference.description]
    assert [column.name for column in description[-2:]] == ["b", "c"]
    cursor.execute("SELECT")  # a result of no column: an empty description, as psycopg's
    assert cursor.description is not None and not cursor.description
    cursor.execute("SET LOCAL statement_timeout = 0")
    assert cursor.description is None
