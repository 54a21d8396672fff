"""On SQLite, the audit rows of light reads finishing together are committed together (hub.audit.GroupCommit): one
INSERT for the batch, each read answered only once that INSERT is committed, and every read of a failed batch
failed."""

import contextlib
import threading
import time

import pytest
from sqlalchemy import event, select

from hub import audit
from hub.models import AuditEvent
from hub.services import accounts
from tests import factories

READERS = 3


def _readers(app, committed):
    if app.extensions["hub.audit_commits"] is None:
        pytest.skip("PostgreSQL commits each read's row on its own (its WAL flushes group concurrent commits)")
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        users = [factories.coordinator(session, org) for _ in range(READERS)]
        patient = factories.consenting_patient(session, org, recorded_by=users[0])
        tokens = [accounts.create_api_token(session, user, name="group commit")[1] for user in users]
        session.commit()
        return factory, patient.id, tokens


def _read_while_a_batch_commits(app, tokens, patient_id):
    """Each token reads the patient from its own thread while the group's turn is held (a batch committing), until
    the three reads' rows wait in one batch; then the turn is released. Returns each read's status and request id."""
    group = app.extensions["hub.audit_commits"]
    answers: dict[int, tuple[int, str]] = {}

    def read(n: int) -> None:
        response = app.test_client().get(
            f"/api/v1/patients/{patient_id}", headers={"Authorization": f"Bearer {tokens[n]}"}
        )
        answers[n] = (response.status_code, response.headers["X-Request-Id"])

    threads = [threading.Thread(target=read, args=(n,)) for n in range(READERS)]
    with group._turn:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while group._open is None or len(group._open.rows) < READERS:
            assert time.monotonic() < deadline, "the reads did not queue their rows"
            time.sleep(0.01)
        assert not answers  # none answered before its row is committed
    for thread in threads:
        thread.join(timeout=60)
    return answers


@contextlib.contextmanager
def audit_inserts(engine, *, failing: bool = False):
    """The audit INSERTs sent on `engine` meanwhile; `failing`: each of them raises instead of being sent."""
    statements: list[str] = []

    def seen(_connection, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"):
            statements.append(statement)
            if failing:
                raise RuntimeError("the audit INSERT failed")

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


@pytest.mark.concurrency
def test_reads_finishing_while_a_batch_commits_share_one_insert(app, committed):
    factory, patient_id, tokens = _readers(app, committed)
    with audit_inserts(app.extensions["hub.engine"]) as statements:
        answers = _read_while_a_batch_commits(app, tokens, patient_id)

    assert [status for status, _ in answers.values()] == [200] * READERS
    assert len(statements) == 1
    request_ids = {request_id for _, request_id in answers.values()}
    with factory() as session:
        rows = session.execute(
            select(AuditEvent.request_id, AuditEvent.action).where(AuditEvent.request_id.in_(request_ids))
        ).all()
    assert sorted(rows) == sorted((request_id, "patient.read") for request_id in request_ids)


@pytest.mark.concurrency
def test_every_read_of_a_failed_batch_fails_and_leaves_no_row(app, committed, monkeypatch):
    # Answered as in production (a 500 page), not raised into the test client's thread.
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    factory, patient_id, tokens = _readers(app, committed)
    with audit_inserts(app.extensions["hub.engine"], failing=True):
        answers = _read_while_a_batch_commits(app, tokens, patient_id)

    assert [status for status, _ in answers.values()] == [500] * READERS
    request_ids = {request_id for _, request_id in answers.values()}
    with factory() as session:
        assert session.scalars(select(AuditEvent.id).where(AuditEvent.request_id.in_(request_ids))).all() == []


@pytest.mark.concurrency
def test_a_read_whose_batch_is_never_written_fails_after_the_wait(app, committed, monkeypatch):
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    factory, patient_id, tokens = _readers(app, committed)
    group = app.extensions["hub.audit_commits"]
    monkeypatch.setattr(audit, "_BATCH_WAIT_SECONDS", 0.2)
    stalled = audit._Batch()  # a batch whose leader is gone: it is never written
    monkeypatch.setattr(group, "_open", stalled)

    response = app.test_client().get(f"/api/v1/patients/{patient_id}", headers={"Authorization": f"Bearer {tokens[0]}"})

    assert response.status_code == 500
    assert [row["action"] for row in stalled.rows] == ["patient.read"]  # it joined the batch, which no one wrote
    with factory() as session:
        written = select(AuditEvent.id).where(AuditEvent.request_id == response.headers["X-Request-Id"])
        assert session.scalars(written).all() == []
