"""Database plumbing: the declarative base, the UTC datetime type, engines and session scopes."""

import dataclasses
import datetime as dt
import functools
import itertools
import json
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import psycopg
from psycopg import _queries as psycopg_queries
from psycopg.pq import ExecStatus
from sqlalchemy import (
    DateTime,
    Executable,
    Insert,
    MetaData,
    Row,
    String,
    Table,
    Text,
    Update,
    bindparam,
    create_engine,
    event,
    insert,
    make_url,
    select,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import Connection, CursorResult, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeDecorator, TypeEngine

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator):
    """An aware datetime stored as UTC: timestamptz on PostgreSQL, naive UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: give a timezone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_engine(url: str, *, statement_timeout_ms: int = 0, lock_timeout_ms: int = 0, **kwargs) -> Engine:
    """An engine that never shows a statement's parameters (a patient's address, a referral's reason): neither
    in its log, at any level, nor in the message of a database error.

    On PostgreSQL, `statement_timeout_ms` and `lock_timeout_ms` (0: none) are set on every connection at its
    start, so that the server cancels a statement that runs or waits too long and the request fails cleanly
    (hub.http.errors, its transaction rolled back) instead of holding a thread and its locks. SQLite ignores them:
    its busy timeout already bounds the wait for its one lock."""
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        _serialise_sqlite_writers(engine)
        return engine
    limits = {"statement_timeout": statement_timeout_ms, "lock_timeout": lock_timeout_ms}
    options = " ".join(f"-c {name}={value}" for name, value in limits.items() if value)
    connect_args = dict(kwargs.get("connect_args", {}))
    if make_url(url).get_driver_name() == "psycopg":
        connect_args.setdefault("cursor_factory", CachingCursor)
    if options:
        connect_args["options"] = options
    kwargs["connect_args"] = connect_args
    # No pre-ping: it costs a round trip on every checkout, i.e. every request. A connection the server closed is
    # found at its transaction's first statement instead, which is then run again (make_session_factory).
    engine = create_engine(url, pool_pre_ping=False, **kwargs)
    event.listen(engine.pool, "reset", _leave_autocommit)
    return engine


# psycopg turns a statement's %(name)s placeholders into $n by parsing its text on every execution, and keeps the
# result only for statements of at most 4 kB and 50 parameters (psycopg._queries: its cache once grew past 100 MB
# with INSERTs of varying numbers of rows). The hot paths' statements are built once and sent again and again, some
# over those bounds (a booking's read, 5 kB; its one write, 6 kB and 70 parameters): parsed each time, they took a
# fifth of a booking's CPU under cProfile (P2, 2026-12-04). Statements up to 16 kB are kept here, whatever their
# parameters, in a cache of their own bounded in size (256 entries: each up to 16 kB of text plus its
# converted form and parts, about 3× the text, so at most ~12 MB per process). This subclasses psycopg's
# query class, which is not public API: the version is pinned (setup.cfg) and tests.test_driver_path fails if the
# cache is no longer used.
_LONGEST_CACHED = 16_384
_convert_long = functools.lru_cache(maxsize=256)(psycopg_queries._query2pg_nocache)


class _CachingQuery(psycopg_queries.PostgresQuery):
    def convert(self, query, vars) -> None:
        if vars is None or not isinstance(query, str):
            super().convert(query, vars)
            return
        encoded = query.encode(self._tx.encoding)
        cached_by_psycopg = (
            len(encoded) <= psycopg_queries.MAX_CACHED_STATEMENT_LENGTH
            and len(vars) <= psycopg_queries.MAX_CACHED_STATEMENT_PARAMS
        )
        if cached_by_psycopg or len(encoded) > _LONGEST_CACHED:
            super().convert(encoded, vars)
            return
        self.query, self._want_formats, self._order, self._parts = _convert_long(encoded, self._tx.encoding)
        self.dump(vars)


_DESCRIBED = (ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK)


class _ResultView:
    """What psycopg's Column reads of its cursor, taken when the description is asked for: the columns built later
    describe that result, whatever the cursor ran since."""

    __slots__ = ("_encoding", "adapters", "pgresult")

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self.pgresult = cursor.pgresult
        self._encoding = cursor._encoding
        self.adapters = cursor.adapters


class _Description(Sequence[psycopg.Column]):
    """A result's description whose Column objects are built at the first access to one of them. SQLAlchemy asks
    for the description at every execution but reads its columns only when it builds a statement's result
    metadata, at its first execution (a compiled statement keeps it): built at every access, they took ~10 % of the
    P7 mix's profiled CPU (about 42 columns per result, 2026-12-05). Its length and truth need no Column."""

    __slots__ = ("_columns", "_count", "_view")

    def __init__(self, cursor: psycopg.Cursor, count: int) -> None:
        self._view: _ResultView | None = _ResultView(cursor)
        self._count = count
        self._columns: list[psycopg.Column] = []

    def _built(self) -> list[psycopg.Column]:
        if self._view is not None:
            view = self._view
            self._columns = [psycopg.Column(cast(Any, view), i) for i in range(self._count)]
            self._view = None
        return self._columns

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):
        return self._built()[index]

    def __iter__(self) -> Iterator[psycopg.Column]:
        return iter(self._built())

    def __repr__(self) -> str:
        return repr(self._built())


class CachingCursor(psycopg.Cursor):
    """psycopg's cursor, its statements' conversion cached up to 16 kB (_CachingQuery) and its description's
    columns built when read (_Description): the engine's cursors on PostgreSQL (make_engine)."""

    _query_cls = _CachingQuery

    @property
    def description(self) -> Sequence[psycopg.Column] | None:  # type: ignore[override]
        # psycopg's test of a result that has a description, its columns left to _Description.
        result = self.pgresult
        if result and (result.nfields or result.status in _DESCRIBED):
            return _Description(self, result.nfields)
        return None


# The execution option of a transaction that only reads (see _serialise_sqlite_writers).
READ_ONLY = "hub_read_only"


def _serialise_sqlite_writers(engine: Engine) -> None:
    """Every SQLite transaction starts with BEGIN IMMEDIATE.

    Almost every request writes (the audit line of a read), so a deferred transaction would try to
    upgrade its read lock and fail with "database is locked"; taking the write lock up front makes
    concurrent writers wait their turn (busy timeout) instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # The driver is left in autocommit (isolation_level None above): with no BEGIN, each statement is its own.
        options = connection.get_execution_options()
        if options.get(_NO_BEGIN):
            return
        # A long read that writes nothing (the audit chain's walk) asks for a deferred BEGIN: under WAL it then
        # holds no lock that would make the writers wait for it.
        connection.exec_driver_sql("BEGIN" if options.get(READ_ONLY) else "BEGIN IMMEDIATE")


# A session in `without_transaction` mode (session.info key), and its connection's option on SQLite.
_WITHOUT_TRANSACTION = "hub.without_transaction"
_NO_BEGIN = "hub_no_begin"


def without_transaction(session: Session) -> None:
    """Run the session's statements each on its own, committed as it runs, without BEGIN and COMMIT: for a request
    that only reads, whose one write (its audit rows, queued until the end) is then one INSERT, atomic on its own.
    Call it before the session's first statement.

    On PostgreSQL this saves the BEGIN and COMMIT round trips (two of a patient read's five); each statement already
    saw its own snapshot under READ COMMITTED. On SQLite it leaves out the BEGIN IMMEDIATE that would hold the
    database's one write lock from the first SELECT to the end of the request: the lock is taken by the INSERT alone."""
    bind = session.get_bind()
    if not isinstance(bind, Engine):
        # A session joined to its caller's connection (the tests' rolled-back outer transaction) runs inside it.
        return
    session.info[_WITHOUT_TRANSACTION] = True
    if bind.dialect.name != "postgresql":
        session.connection(execution_options={_NO_BEGIN: True})
        return
    # The driver's autocommit switched on here and off when the pool takes the connection back (_leave_autocommit),
    # rather than by SQLAlchemy's isolation_level option: its checks, and its reset of the isolation level at each
    # checkin, cost ~45 µs of CPU per light read; the driver's switch, which sends nothing, ~5.
    pooled = session.connection().connection
    dbapi = cast(Any, pooled.dbapi_connection)
    if not dbapi.autocommit:  # an engine built in AUTOCOMMIT keeps its connections so
        pooled.info[_AUTOCOMMIT] = True
        dbapi.autocommit = True


# The pooled connection's info key of a connection `without_transaction` put in the driver's autocommit.
_AUTOCOMMIT = "hub_autocommit"


def _leave_autocommit(dbapi_connection: Any, record: Any, _state: Any) -> None:
    """The pool's reset of every connection it takes back: one `without_transaction` put in autocommit is
    returned to transactions before any other checkout (a failure to do so invalidates it: the pool discards a
    connection whose reset raised). Connections of an engine made in AUTOCOMMIT (tests, migrations) stay so."""
    if record is not None and record.info.pop(_AUTOCOMMIT, False):
        dbapi_connection.autocommit = False


def is_without_transaction(session: Session) -> bool:
    return session.info.get(_WITHOUT_TRANSACTION, False)


def is_autocommitting(session: Session) -> bool:
    """Whether the session's statements are committed as they run, on PostgreSQL (`without_transaction`): its current
    connection is in the driver's autocommit. Not after a rollback (an error page's): the connection went back to
    the pool, out of autocommit, and the next statement begins a transaction on the one checked out then."""
    if not is_without_transaction(session) or session.get_transaction() is None:
        return False
    return session.connection().connection.info.get(_AUTOCOMMIT, False)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    _retry_first_statement_on_disconnect(factory)
    return factory


def _retry_first_statement_on_disconnect(factory: sessionmaker[Session]) -> None:
    """A pooled connection that the server closed (restart, idle timeout, pg_terminate_backend) fails at the first
    statement of the transaction that checked it out. Nothing depends on that statement yet, so it is run once
    more on a fresh connection (SQLAlchemy has invalidated the dead one, and the pool every connection as old).
    A disconnect later in a transaction is not retried: that would replay half a unit of work."""

    @event.listens_for(factory, "do_orm_execute")
    def _retry(state: ORMExecuteState):
        return _retrying(state.session, state.invoke_statement)


def read_rows(session: Session, statement: Executable, parameters: dict) -> Sequence[Row]:
    """The rows of a Core SELECT run on the session's connection: plain rows, without the ORM's result processing
    (about 0.1 ms of CPU per statement, a tenth of a light read), retried after a disconnect as an ORM statement is."""
    return _retrying(session, lambda: session.connection().execute(statement, parameters).all())


def driver_rows(session: Session, statement: ClauseElement, parameters: dict) -> list[Any]:
    """`read_rows` run by the driver itself: the statement's SQL is compiled once per dialect (`_prepare`) and its
    rows come straight from the DBAPI cursor as named tuples, without SQLAlchemy's per-execution work (the
    compiled-cache lookup, the result's metadata built from the cursor's description, Row objects): about half of
    a light read's SQL time in Python (P1). For statements built once (module constants) whose columns have unique
    names; rows are read by name or position, as `read_rows`'s. The engine's cursor events still see the statement,
    and a disconnect is retried as `read_rows`'s. No autoflush: changes the session still holds back are not seen,
    so a request that writes then lists flushes first (today's callers are reads)."""
    return _retrying(session, lambda: driver_execute(session.connection(), statement, [parameters], fetch=True))


@dataclasses.dataclass(slots=True)
class _Prepared:
    sql: str
    # The parameters' names in the SQL's order for a positional paramstyle (SQLite's qmark), else None (named).
    order: tuple[str, ...] | None
    constants: dict[str, Any]  # the values bound in the statement itself (`x == 3`), under their compiled names
    binds: tuple[tuple[str, Callable], ...]  # the bind processors (a UTC datetime to SQLite's text…)
    make_row: Callable | None  # a result row as a named tuple, None for a statement without rows
    types: tuple[TypeEngine, ...]  # the result columns' types as the dialect implements them
    # The result processors by position (text to datetime, enum…), built at the first execution: some depend on
    # the type the driver reports for the column (cursor.description), as SQLAlchemy's own are (PostgreSQL's
    # Numeric and Float choose their conversion by it, and fail without it).
    results: tuple[tuple[int, Callable], ...] | None = None


# Keyed on the dialect's class (the driver: psycopg and psycopg2 render casts differently), its paramstyle and the
# server's version (what SQL the dialect may use), not on its name alone.
_PreparedKey = tuple[ClauseElement, type[Dialect], str, tuple[int | str, ...] | None, tuple[str, ...] | None]
_PREPARED: dict[_PreparedKey, _Prepared] = {}


def _prepare(statement: ClauseElement, dialect: Dialect, keys: tuple[str, ...] | None) -> _Prepared:
    cache_key = (statement, type(dialect), dialect.paramstyle, dialect.server_version_info, keys)
    prepared = _PREPARED.get(cache_key)
    if prepared is not None:
        return prepared
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(keys) if keys else None))
    given = [name for name, bind in compiled.binds.items() if bind.required]
    # The SQL with its IN lists of constants rendered (`state IN (?, ?, ?)`), and every parameter's value.
    expanded = compiled.construct_expanded_state(dict.fromkeys(given))
    processors: dict[str, Callable] = dict(expanded.processors)
    for name in expanded.parameters:
        bind = compiled.binds.get(name)
        process = bind.type.dialect_impl(dialect).bind_processor(dialect) if bind is not None else None
        if process is not None:
            processors[name] = process
    constants = {
        name: processors[name](value) if name in processors else value
        for name, value in expanded.parameters.items()
        if name not in given
    }
    make_row: Callable | None = None
    types: tuple[TypeEngine, ...] = ()
    # A SELECT's columns, or those an INSERT/UPDATE returns (RETURNING); none for a statement without rows.
    columns = getattr(statement, "exported_columns", None)
    if columns:
        row_type: Any = namedtuple("DriverRow", list(columns.keys()))  # type: ignore[misc]
        make_row = row_type._make
        types = tuple(column.type.dialect_impl(dialect) for column in columns)
    order = tuple(expanded.positiontup) if expanded.positiontup is not None else None
    binds = tuple((name, processors[name]) for name in given if name in processors)
    prepared = _Prepared(expanded.statement, order, constants, binds, make_row, types)
    _PREPARED[cache_key] = prepared
    return prepared


def _result_processors(prepared: _Prepared, dialect: Dialect, cursor: Any) -> tuple:
    """The result processors of a statement's columns, given the types the driver reports for them (its cursor's
    description), as SQLAlchemy's result metadata builds them; worked out once per prepared statement. The
    description is read only then: psycopg builds it anew at each access, one object per column (P1: 7 % of a
    patient read's CPU on PostgreSQL went to it)."""
    if prepared.results is None:
        description = cursor.description
        found = (
            kind.result_processor(dialect, column[1]) for kind, column in zip(prepared.types, description, strict=True)
        )
        prepared.results = tuple((i, process) for i, process in enumerate(found) if process is not None)
    return prepared.results


# The pooled connection's info key of the DBAPI cursor that driver_execute runs its statements on.
_DRIVER_CURSOR = "hub_driver_cursor"


def _driver_cursor(info: dict, dbapi_connection: Any) -> Any:
    """The one cursor of this DBAPI connection that `driver_execute` runs its statements on, made at its first
    statement and kept in the pooled connection's `info`, which SQLAlchemy empties when it replaces the DBAPI
    connection (invalidated, recycled): a cursor made and closed per statement cost ~10 µs of CPU on PostgreSQL,
    about a third of the driver's path over the round trip (2 to 3 statements a request, 2026-12-05). A pooled
    connection serves one thread at a time, so does its cursor; each execution starts from a clean cursor (psycopg
    and sqlite3 reset its state), and the last result it holds (psycopg's, in libpq's memory) is freed by the next."""
    cursor = info.get(_DRIVER_CURSOR)
    if cursor is None:
        cursor = info[_DRIVER_CURSOR] = dbapi_connection.cursor()
    return cursor


def driver_execute(
    connection: Connection, statement: ClauseElement, parameters: list[dict], *, fetch: bool = False
) -> list[tuple]:
    """Run a statement built once on the connection's DBAPI cursor (several parameter sets: executemany), within
    the connection's transaction if it has one. A DBAPI error is raised as SQLAlchemy's, without the statement's
    parameters; a disconnect invalidates the connection and every pooled connection as old, as SQLAlchemy does.

    The engine's `before_cursor_execute` and `after_cursor_execute` listeners see the statement (with no execution
    context: there is none), so statement logs and timers pair up. Not the rest of SQLAlchemy's execution: no
    `handle_error` event, and no `echo` log line (the hub runs with echo off; its statement logs are listeners)."""
    keys = None if fetch else tuple(parameters[0])
    dialect = connection.dialect
    prepared = _prepare(statement, dialect, keys)
    arguments: list[Any] = []
    for given in parameters:
        bound = prepared.constants | given
        for name, process in prepared.binds:
            if name in bound:
                bound[name] = process(bound[name])
        arguments.append(bound if prepared.order is None else tuple(bound[name] for name in prepared.order))
    pooled = connection.connection
    dbapi_connection = pooled.dbapi_connection
    assert dbapi_connection is not None
    many = len(arguments) > 1
    sent = arguments if many else arguments[0]
    # SQLAlchemy's own test before it reads its dispatcher: with no listener (production), skipping the two loops
    # saves ~3.5 µs of CPU per statement (hk).
    events = connection._has_events or connection.engine._has_events
    cursor = None
    try:
        cursor = _driver_cursor(pooled.info, dbapi_connection)
        if events:
            for listener in connection.dispatch.before_cursor_execute:
                listener(connection, cursor, prepared.sql, sent, None, many)
        if many:
            cursor.executemany(prepared.sql, arguments)
        else:
            cursor.execute(prepared.sql, arguments[0])
        if events:
            for listener in connection.dispatch.after_cursor_execute:
                listener(connection, cursor, prepared.sql, sent, None, many)
        raw = cursor.fetchall() if fetch else []
        results = _result_processors(prepared, dialect, cursor) if fetch else ()
    except dialect.loaded_dbapi.Error as error:
        invalidated = dialect.is_disconnect(error, dbapi_connection, cursor)
        if invalidated:
            # As Connection._handle_dbapi_exception: the server went away for every connection of this pool made
            # before now (a restart), so the pool replaces them at their next checkout, not one failure each.
            connection.engine.pool._invalidate(connection.connection, error)
            connection.invalidate(error)
        raise DBAPIError.instance(
            prepared.sql,
            None,
            error,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            dialect=dialect,
            connection_invalidated=invalidated,
        ) from error
    make = prepared.make_row
    if make is None:
        return []
    if not results:
        return [make(values) for values in raw]
    rows = []
    for found in raw:
        values = list(found)
        for i, process in results:
            values[i] = process(values[i])
        rows.append(make(values))
    return rows


# The prefix of hub.audit's session.info keys: the rows it queued for the end of the request.
_AUDIT_QUEUE = "hub.audit."


def _retrying(session: Session, run: Callable[[], T]) -> T:
    autocommit = session.info.get(_WITHOUT_TRANSACTION, False)
    if (session.in_transaction() and not autocommit) or session.new or session.dirty or session.deleted:
        # Not the transaction's first statement, or unflushed changes a rollback would drop: run as usual.
        # Without a transaction every statement is a first one: those before it were committed as they ran.
        return run()
    try:
        return run()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        if autocommit:
            # Nothing to undo without a transaction: what the session queued for its end (its audit rows, which
            # a rollback's listeners discard) stays. Only that: other marks (a row lock taken) went with the rollback.
            queued = {
                key: value
                for key, value in session.info.items()
                if isinstance(key, str) and key.startswith(_AUDIT_QUEUE)
            }
            session.rollback()
            session.info.update(queued)
            without_transaction(session)
        else:
            session.rollback()
        return run()


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work for a CLI command or a job: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def rows_changed(session: Session, statement: UpdateBase, parameters: Any = None) -> int:
    """How many rows an UPDATE or DELETE touched (the total of an executemany when given a list of parameters).
    Session.execute is typed as returning a Result; for such a statement it is the CursorResult that counts."""
    return cast(CursorResult, session.execute(statement, parameters)).rowcount


def update_row(
    session: Session,
    instance: Any,
    values: dict[str, Any],
    *,
    inserting: Sequence[tuple[Table, dict]] = (),
    along: Sequence[tuple[UpdateBase, dict]] = (),
) -> None:
    """UPDATE the loaded instance's row by its id with `values` (attributes of its class mapped to columns of its
    table, plus the columns' onupdate values as a flush would give them), now, in one statement built once per set
    of attributes and run by the driver (driver_execute); the instance shows the values as committed. For a hot
    write (issue 17, P7): the unit of work's flush at commit cost more CPU than the rest of such a request's
    writes. Nothing is left for the session to flush, so nothing of the instance may be changed the ORM's way in
    the same request (it would be written again, stale values included). A savepoint rolled back after it does not
    expire these values (the ORM expires what it flushed there; a full rollback expires everything): a caller that
    goes on after one refreshes the instance. `inserting`, `along`: written with it, as update_by_id's."""
    written = update_by_id(session, type(instance), instance.id, values, inserting=inserting, along=along)
    for name, value in written.items():
        set_committed_value(instance, name, value)


def update_by_id(
    session: Session,
    model: Any,
    row_id: int,
    values: dict[str, Any],
    *,
    inserting: Sequence[tuple[Table, dict]] = (),
    along: Sequence[tuple[UpdateBase, dict]] = (),
) -> dict[str, Any]:
    """update_row's UPDATE of the model's row `row_id`, for a row read as plain columns (no instance): returns the
    values written, the columns' onupdate values included. `inserting`: rows of other tables (an audit row, whose
    content is known before the write) inserted in the same transaction, on PostgreSQL by the same statement
    (data-modifying CTEs of the UPDATE: one round trip fewer), elsewhere one INSERT each after it. `along`: writes
    of other tables built once (a statement object kept, its parameters named apart from "new_…", "row…" and
    "row_id"), likewise run by the same statement on PostgreSQL, elsewhere by the driver each before it. Only other
    tables' (checked): as CTEs on PostgreSQL they see the UPDATE's snapshot, not its change, where on SQLite the
    UPDATE sees theirs, and PostgreSQL cannot change one row twice in a statement."""
    if any(other.table is model.__table__ for other, _given in along):
        raise ValueError(f"`along` writes {model.__table__.name}, the table of the row updated")
    connection = session.connection()
    postgresql = connection.dialect.name == "postgresql"
    shapes, parameters = around_new_id(inserting if postgresql else ())
    if postgresql:
        for _statement, given_along in along:
            parameters |= given_along
    else:
        for other, given_along in along:
            driver_execute(connection, other, [given_along])
    statements = tuple(other for other, _given in along) if postgresql else ()
    statement, stamped = _update_by_id(model.__mapper__, tuple(values), shapes, statements)
    given = _with_onupdate(values, stamped)
    parameters |= {f"new_{name}": value for name, value in given.items()}
    parameters["row_id"] = row_id
    driver_execute(connection, statement, [parameters])
    if inserting and not postgresql:
        insert_together(session, inserting)
    return given


def update_by_id_if_unchanged(
    session: Session,
    model: Any,
    row_id: int,
    values: dict[str, Any],
    *,
    unchanged: dict[str, Any],
    inserting: Sequence[tuple[Table, dict]] = (),
) -> dict[str, Any] | None:
    """update_by_id's UPDATE, made only if the row still holds the `unchanged` values (those its new values were
    worked out from, read without a lock): None if another writer changed them since, and then none of `inserting`
    is written either (an audit row of a change that did not happen). On PostgreSQL those rows are inserted by the
    same statement from the UPDATE's RETURNING, so from no row when it matched none; elsewhere after it, only if it
    matched."""
    connection = session.connection()
    postgresql = connection.dialect.name == "postgresql"
    shapes, parameters = around_new_id(inserting if postgresql else ())
    statement, stamped = _update_by_id_if_unchanged(model.__mapper__, tuple(values), tuple(unchanged), shapes)
    given = _with_onupdate(values, stamped)
    parameters |= {f"new_{name}": value for name, value in given.items()}
    parameters |= {f"was_{name}": value for name, value in unchanged.items()}
    parameters["row_id"] = row_id
    if not driver_execute(connection, statement, [parameters], fetch=True):
        return None
    if inserting and not postgresql:
        insert_together(session, inserting)
    return given


def _with_onupdate(values: dict[str, Any], stamped: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    given = dict(values)
    for name, column in stamped:
        default = column.onupdate
        given[name] = default.arg if default.is_scalar else default.arg(None)
    return given


def _set_by_id(mapper: Any, names: tuple[str, ...]) -> tuple[Update, tuple[tuple[str, Any], ...]]:
    # Bound parameters named apart from the columns: SQLAlchemy reserves a column's own name for the VALUES it fills.
    table = mapper.local_table
    stamped = tuple(
        (key, column)
        for key, column in mapper.columns.items()
        if key not in names and column.table is table and column.onupdate is not None
    )
    targets = {name: mapper.columns[name] for name in (*names, *(key for key, _column in stamped))}
    statement = (
        update(table)
        .where(table.c.id == bindparam("row_id", type_=table.c.id.type))
        .values({column: bindparam(f"new_{name}", type_=column.type) for name, column in targets.items()})
    )
    return statement, stamped


@functools.cache
def _update_by_id(
    mapper: Any, names: tuple[str, ...], inserting: tuple = (), along: tuple[UpdateBase, ...] = ()
) -> tuple[ClauseElement, tuple[tuple[str, Any], ...]]:
    # The rows inserted with it (around_new_id's shapes, with no new id) are CTEs nobody reads: PostgreSQL runs a
    # data-modifying CTE all the same.
    statement, stamped = _set_by_id(mapper, names)
    statement = statement.add_cte(
        *(rows.cte(f"rows_{i}") for i, rows in enumerate(inserts_around_id(None, inserting))),
        *(other.cte(f"along_{i}") for i, other in enumerate(along)),
    )
    return statement, stamped


@functools.cache
def _update_by_id_if_unchanged(
    mapper: Any, names: tuple[str, ...], unchanged: tuple[str, ...], inserting: tuple = ()
) -> tuple[ClauseElement, tuple[tuple[str, Any], ...]]:
    # The UPDATE returns the id of the row it changed; the rows inserted with it select from that (a CTE), so that
    # they are inserted once if it changed its row, not at all if it did not. The statement's rows say which.
    statement, stamped = _set_by_id(mapper, names)
    written = statement.where(
        *(mapper.columns[name] == bindparam(f"was_{name}", type_=mapper.columns[name].type) for name in unchanged)
    ).returning(mapper.local_table.c.id)
    if not inserting:
        return written, stamped
    changed = written.cte("changed")
    inserts = inserts_around_id(None, inserting, selected_from=changed)
    return select(changed.c.id).add_cte(*(rows.cte(f"rows_{i}") for i, rows in enumerate(inserts))), stamped


def insert_together(session: Session, rows: Sequence[tuple[Table, dict]]) -> None:
    """Insert one row into each of several tables in the session's transaction: on PostgreSQL in one round trip
    (the first rows as data-modifying CTEs of the last INSERT), elsewhere one INSERT each. For a hot path that
    writes rows nobody reads back (a booking's offer, e-mail and audit row when its appointment is inserted apart:
    SQLite, a group session's seat); each row takes its columns' defaults as a plain INSERT would."""
    full = [(table, with_defaults(table, row)) for table, row in rows]
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        for table, row in full:
            connection.execute(insert(table), row)
        return
    shape = tuple((table, tuple(row)) for table, row in full)
    parameters = {f"{i}_{name}": value for i, (_table, row) in enumerate(full) for name, value in row.items()}
    connection.execute(_together(shape), parameters)


@functools.cache
def _together(shape: tuple[tuple[Table, tuple[str, ...]], ...]) -> Executable:
    # Built once per shape with bound parameters ("<row>_<column>"). Every column given explicitly: SQLAlchemy
    # cannot render the defaults of INSERTs nested as CTEs.
    inserts = [
        insert(table).values({name: bindparam(f"{i}_{name}", type_=table.c[name].type) for name in names})
        for i, (table, names) in enumerate(shape)
    ]
    *first, last = inserts
    return last.add_cte(*(statement.cte(f"row_{i}") for i, statement in enumerate(first)))


def with_defaults(table: Table, row: dict) -> dict:
    """The row with its missing columns' client-side defaults (a constant, or a callable of no argument such as
    utcnow), as a plain INSERT fills them; server defaults are left to the database."""
    full = dict(row)
    for column in table.columns:
        default = column.default
        if column.key in full or default is None or not (default.is_scalar or default.is_callable):
            continue
        full[column.key] = default.arg if default.is_scalar else default.arg(None)  # type: ignore[attr-defined]
    return full


class _NewId:
    """insert_holding's owner row's id in a row inserted with it (NEW_ID), before the database gives it."""

    def __repr__(self) -> str:
        return "NEW_ID"


NEW_ID = _NewId()


@dataclasses.dataclass(frozen=True)
class IdText:
    """A text holding NEW_ID: `before`, the new id in decimal, `after`. On PostgreSQL the statement that inserts the
    owner row concatenates them (scheduling.bookings.insert_holding), so no text is searched for a stand-in id;
    elsewhere of_id() builds it once the id is known. `"prefix" + text` and `text + "suffix"` give IdTexts."""

    before: str = ""
    after: str = ""

    def of_id(self, new_id: int) -> str:
        return f"{self.before}{new_id}{self.after}"

    def __add__(self, other: str) -> "IdText":
        return IdText(self.before, self.after + other)

    def __radd__(self, other: str) -> "IdText":
        return IdText(other + self.before, self.after)


def json_text(value: dict) -> "str | IdText":
    """json.dumps(value, sort_keys=True, ensure_ascii=False, default=str), where one top-level value NEW_ID stands for
    the new row's id: then an IdText, the JSON around the id written here member by member, as json.dumps writes
    them (keys sorted, ", " and ": " between)."""
    dumps = functools.partial(json.dumps, sort_keys=True, ensure_ascii=False, default=json_default)
    items = sorted(value.items())
    at = [n for n, (_key, member) in enumerate(items) if member is NEW_ID]
    if not at:
        return dumps(value)
    if len(at) > 1:
        raise ValueError("one NEW_ID in a text")
    if not all(isinstance(key, str) for key, _member in items):
        # json.dumps would write 1 as "1": written here as they are, such keys would make invalid JSON.
        raise TypeError("a text around NEW_ID has text keys only")
    members = [f"{dumps(key)}: {'' if member is NEW_ID else dumps(member)}" for key, member in items]
    return IdText("{" + ", ".join(members[: at[0] + 1]), "".join(f", {m}" for m in members[at[0] + 1 :]) + "}")


def json_default(value) -> str:
    """json.dumps's `default` for the hub's stored texts: str() of what JSON cannot write, except NEW_ID, which
    only json_text may place (a top-level member): anywhere else, str() would store the word "NEW_ID" in place of
    the id without a word."""
    if value is NEW_ID:
        raise TypeError("NEW_ID is a top-level member of a text made by json_text")
    return str(value)


def with_new_id(rows: Sequence[tuple[Table, dict]], new_id: int) -> list[tuple[Table, dict]]:
    """The rows with NEW_ID and IdTexts given the owner's id: what insert_holding's statement inserts, for a caller
    that inserts the owner apart (SQLite, a group session's seat)."""
    return [(table, {name: _given(value, new_id) for name, value in row.items()}) for table, row in rows]


def _given(value, new_id: int):
    if value is NEW_ID:
        return new_id
    return value.of_id(new_id) if isinstance(value, IdText) else value


def around_new_id(rows: Sequence[tuple[Table, dict]]) -> tuple[tuple, dict[str, Any]]:
    """Rows to insert by the statement that gives their owner its id (each with its columns' defaults): their
    shape, each column's kind ("id": NEW_ID, "text": an IdText, "value") for values_around_id, and the parameters
    "row<i>_<column>" (an IdText's "…_before" and "…_after"; none for NEW_ID)."""
    shapes = []
    parameters: dict[str, Any] = {}
    for i, (table, row) in enumerate(rows):
        given = with_defaults(table, row)
        shapes.append((table, tuple((name, _kind_of(value)) for name, value in given.items())))
        for name, value in given.items():
            if isinstance(value, IdText):
                parameters |= {f"row{i}_{name}_before": value.before, f"row{i}_{name}_after": value.after}
            elif value is not NEW_ID:
                parameters[f"row{i}_{name}"] = value
    return tuple(shapes), parameters


def _kind_of(value) -> str:
    if value is NEW_ID:
        return "id"
    return "text" if isinstance(value, IdText) else "value"


def values_around_id(new_id: Any, i: int, table: Table, columns: tuple[tuple[str, str], ...]) -> list[Any]:
    """The values of around_new_id's row `i` for an INSERT … SELECT from the owner's statement, `new_id` its id."""

    def value(name: str, kind: str):
        if kind == "id":
            return new_id
        if kind == "text":
            around = sql_cast(new_id, Text)
            before, after = (bindparam(f"row{i}_{name}_{side}", type_=Text) for side in ("before", "after"))
            return before.concat(around).concat(after)
        # Typed, as a SELECT's parameters are not given the column's type. A text is cast to TEXT, never to the
        # column's VARCHAR(n): an explicit cast would cut an overlong value where the INSERT refuses it.
        column_type = table.c[name].type
        # A TypeDecorator over a String (its impl_instance) would be cast to VARCHAR(n) as well.
        textual = isinstance(getattr(column_type, "impl_instance", column_type), String)
        return sql_cast(bindparam(f"row{i}_{name}", type_=column_type), Text if textual else column_type)

    return [value(name, kind) for name, kind in columns]


def inserts_around_id(new_id: Any, shapes: tuple, *, selected_from: Any = None) -> list[Insert]:
    """around_new_id's rows as INSERTs to run as data-modifying CTEs, `new_id` the owner's id (None: no row holds it):
    the consecutive rows of one table and columns in one INSERT of several VALUES, whose ids are drawn in their
    order (PostgreSQL runs a statement's CTEs in no set order: audit rows queued in turn keep their order).
    `selected_from`: a CTE of at most one row (an UPDATE's RETURNING) the rows are selected from instead, so that
    none is inserted when it has no row; several rows are then a UNION ALL, whose branches PostgreSQL runs in order
    (its Append), so their ids are drawn in order all the same."""
    inserts = []
    for (table, names), group in itertools.groupby(
        enumerate(shapes), key=lambda item: (item[1][0], tuple(name for name, _kind in item[1][1]))
    ):
        rows = [values_around_id(new_id, i, table, columns) for i, (_t, columns) in group]
        if selected_from is None:
            inserts.append(insert(table).values([dict(zip(names, row, strict=True)) for row in rows]))
            continue
        selects = [select(*row).select_from(selected_from) for row in rows]
        inserts.append(insert(table).from_select(names, selects[0] if len(selects) == 1 else union_all(*selects)))
    return inserts
