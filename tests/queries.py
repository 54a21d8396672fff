"""Counting the SQL statements a piece of code sends (P6: no N+1): the suite's one counter; and refusing lazy loads
on a hot path (issue 17)."""

import contextlib

from sqlalchemy import event
from sqlalchemy.orm import Session


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


@contextlib.contextmanager
def forbid_lazy_loads():
    """Fails the test if, inside the block, any ORM session lazy-loads a relationship or an expired column. A
    relationship already in the identity map costs no statement and is not counted; an eager selectinload is a
    relationship load too, but asked for, so only a lazy one (lazy_loaded_from) fails."""
    lazy: list[str] = []

    def watch(state):
        if state.is_select and (state.lazy_loaded_from is not None or state.is_column_load):
            lazy.append(" ".join(str(state.statement).split())[:200])

    event.listen(Session, "do_orm_execute", watch)
    try:
        yield lazy
    finally:
        event.remove(Session, "do_orm_execute", watch)
    assert lazy == [], f"lazy loads: {lazy}"
