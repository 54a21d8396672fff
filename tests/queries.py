"""Counting the SQL statements a piece of code sends (P6: no N+1): the suite's one counter."""

import contextlib

from sqlalchemy import event


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
