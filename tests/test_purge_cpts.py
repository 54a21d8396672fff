"""The `committed` fixture's cleanup reaches every table a CPTS owns, so a test's committed rows never outlive it."""

from sqlalchemy import event

import hub.models  # noqa: F401 — every table registered on the metadata
from hub.db import Base
from tests.conftest import purge_cpts

# Tables that belong to no CPTS: the append-only audit log, the scheduler's own bookkeeping, the national tariffs.
SHARED_TABLES = {"audit_chain", "audit_events", "audit_unchained", "job_runs", "scheduler_leases", "tariffs"}


def test_purge_deletes_from_every_table_a_cpts_owns(db_session, cpts):
    purged: set[str] = set()

    def note_table(state):
        if state.is_delete:
            purged.add(state.statement.table.name)

    event.listen(db_session, "do_orm_execute", note_table)
    try:
        purge_cpts(db_session, cpts.id)
    finally:
        event.remove(db_session, "do_orm_execute", note_table)

    assert set(Base.metadata.tables) - SHARED_TABLES - purged == set()
