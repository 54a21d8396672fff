"""Counting the SQL statements a piece of code sends (P6: no N+1): the suite's one counter; and refusing lazy loads
on a hot path (issue 17)."""

import contextlib

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from hub.db import Base


@contextlib.contextmanager
def count_queries(engine):
    """The statements sent on `engine` inside the block, in order."""
    seen: list[str] = []

    def listener(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def audit_inserts(sent: list[str]) -> int:
    """How many of count_queries' statements are an audit INSERT of their own (a round trip each): none where a
    write inserts its audit row with its own statement (hub.audit.take_queued)."""
    return sum(statement.lstrip().startswith("INSERT INTO audit_events") for statement in sent)


# Joined SQL of a statement, without the test transaction's savepoints and the audit write alone: a write that
# inserts its audit row with its own statement (hub.audit.take_queued) is counted.
_NOT_COUNTED = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "INSERT INTO audit_events")


def _counted(statement: str) -> bool:
    return not statement.startswith(_NOT_COUNTED) and "advisory" not in statement


@contextlib.contextmanager
def statements_on(engine):
    """The statements a request sends inside the block, each on one line, leaving out the test transaction's
    savepoints and the audit write alone (counted by their own tests)."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, _parameters, _context, _executemany):
        text = " ".join(statement.split())
        if _counted(text):
            seen.append(text)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


class LazyLoad(AssertionError):
    """A row's relationship or column loaded on first access, one row at a time, instead of with its query."""


@contextlib.contextmanager
def forbid_lazy_loads():
    """Raise inside the block at the first lazy load in any ORM session: a relationship loaded from one instance
    (eager loaders such as selectinload load for all the rows at once and pass) or an expired or deferred column
    loaded for one row. Yields the list of those met, and fails at the end of the block too, for code under test
    that turns the exception into an error page."""
    met: list[str] = []

    def refuse(state):
        lazy_relationship = state.is_relationship_load and state.lazy_loaded_from is not None
        if lazy_relationship or state.is_column_load:
            met.append(f"lazy load of {state.loader_strategy_path or 'a column'}: {state.statement}")
            raise LazyLoad(met[-1])

    event.listen(Session, "do_orm_execute", refuse)
    try:
        yield met
    finally:
        event.remove(Session, "do_orm_execute", refuse)
    assert met == [], f"lazy loads: {met}"


@contextlib.contextmanager
def orm_executions():
    """The statement objects the ORM executes and the class names of the entities it loads meanwhile, in order: a
    lookup that must run one statement built once (the same object at each request) and load only what it names."""
    executed: list = []
    loaded: list[str] = []

    def orm_statement(state):
        executed.append(state.statement)

    def entity_loaded(target, _context):
        loaded.append(type(target).__name__)

    event.listen(Session, "do_orm_execute", orm_statement)
    event.listen(Base, "load", entity_loaded, propagate=True)
    try:
        yield executed, loaded
    finally:
        event.remove(Session, "do_orm_execute", orm_statement)
        event.remove(Base, "load", entity_loaded)


@contextlib.contextmanager
def forbid_flushes():
    """Fail at the end of the block if any ORM session flushed a change inside it (a new, deleted or modified
    object): a hot write sends its own statements (hub.db.update_row) and leaves the unit of work nothing to do at
    commit (issue 17, P7: its flushes were a tenth of the load's CPU). Yields the changes met, as "Class.attribute"
    (or "new Class", "deleted Class")."""
    met: list[str] = []

    def record(session, _context, _instances):
        met.extend(f"new {type(instance).__name__}" for instance in session.new)
        met.extend(f"deleted {type(instance).__name__}" for instance in session.deleted)
        for instance in session.dirty:
            state = inspect(instance)
            met.extend(
                f"{type(instance).__name__}.{attribute.key}"
                for attribute in state.attrs
                if attribute.history.has_changes()
            )

    event.listen(Session, "before_flush", record)
    try:
        yield met
    finally:
        event.remove(Session, "before_flush", record)
    assert met == [], f"flushed: {met}"
