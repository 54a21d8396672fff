"""The rows a transaction has read under their lock (SELECT … FOR UPDATE): the access check of a state change can
take the lock with its one read of the row, and the workflow, which locks and re-reads the row before changing it,
then skips its own SELECT (one statement instead of two on the request's hot path, issue 17).

Forgotten when the session's transaction ends and when any savepoint ends (a savepoint rolled back releases the
locks taken in it): at worst a workflow locks a row twice, never believes a lock held that is not. Not when the
subtransaction every flush opens and closes ends: it is no transaction of the database's and releases nothing."""

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

_KEY = "hub.locked_rows"


def mark(session: Session, row) -> None:
    """`row` was just read with its lock in the session's current transaction."""
    session.info.setdefault(_KEY, set()).add((type(row), row.id))


def held(session: Session, row) -> bool:
    return (type(row), row.id) in session.info.get(_KEY, ())


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None or transaction.nested:
        session.info.pop(_KEY, None)
