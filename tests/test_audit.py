import threading
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import func, text
from sqlalchemy.exc import DBAPIError

from hub import audit
from hub.cli import hub_cli
from hub.models import AuditEvent, Role
from tests import factories


def _write_some(session, user, n=3):
    events = [audit.record(session, actor=user, action="patient.read", target=("patients", i)) for i in range(n)]
    session.commit()
    return events


def test_rows_are_written_only_when_the_transaction_commits(db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    db_session.commit()
    count = db_session.query(AuditEvent).count()
    audit.record(db_session, actor=user, action="patient.read", target=("patients", 1))
    db_session.rollback()
    db_session.commit()
    assert db_session.query(AuditEvent).count() == count


def test_a_row_kept_on_rollback_is_written_at_the_next_commit(db_session, cpts):
    """What a refusal disclosed (I5: a possible duplicate) stays in the log though the refused change does not."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    db_session.commit()
    # SQLite may give the user the id of a committed test's user: count only the rows written from here on.
    start = db_session.query(func.max(AuditEvent.id)).scalar() or 0
    audit.record(
        db_session, actor=user, action="patient.duplicate_check", target=("patients", 7), kept_on_rollback=True
    )
    audit.record(db_session, actor=user, action="patient.create", target=("patients", 8))
    db_session.rollback()
    audit.discard_pending(db_session)
    db_session.commit()
    actions = [e.action for e in db_session.query(AuditEvent).filter(AuditEvent.id > start)]
    assert actions == ["patient.duplicate_check"]
    assert audit.verify(db_session) == []


def test_chain_is_valid_and_links_each_row_to_the_previous(db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    events = _write_some(db_session, user)
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 3))
    assert audit.verify(db_session) == []


def _tamper(session, sql, **params):
    if session.get_bind().dialect.name == "postgresql":
        # Only the table owner can lift the append-only trigger, and only inside this rolled-back test.
        session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    session.execute(text(sql), params)
    session.expire_all()


def test_a_changed_row_is_detected(db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    events = _write_some(db_session, user)
    _tamper(db_session, "UPDATE audit_events SET target_id = '999' WHERE seq = :seq", seq=events[1].seq)
    breaks = audit.verify(db_session)
    assert [(b.seq, b.reason) for b in breaks] == [(events[1].seq, "content does not match its hash")]


def test_a_deleted_row_is_detected(db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    events = _write_some(db_session, user)
    _tamper(db_session, "DELETE FROM audit_events WHERE seq = :seq", seq=events[1].seq)
    reasons = {b.reason for b in audit.verify(db_session) if b.seq == events[2].seq}
    assert "does not follow the previous row's hash" in reasons
    assert any("missing" in r for r in reasons)


def test_cli_verify_exits_non_zero_on_a_broken_chain(app, db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    events = _write_some(db_session, user)
    runner = CliRunner()
    with app.app_context():
        ok = runner.invoke(hub_cli, ["audit", "verify"])
        assert ok.exit_code == 0, ok.output
        assert "intègre" in ok.output
        _tamper(db_session, "UPDATE audit_events SET action = 'x' WHERE seq = :seq", seq=events[0].seq)
        db_session.commit()
        broken = runner.invoke(hub_cli, ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"rupture à la ligne {events[0].seq}" in broken.output


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"])
def test_postgresql_refuses_update_and_delete_of_audit_rows(db_session, cpts, statement):
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's")
    _write_some(db_session, factories.user(db_session, cpts, Role.COORDINATOR), n=1)
    db_session.commit()
    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(text(statement))


def test_concurrent_writers_leave_one_valid_chain(committed):
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        user = factories.user(session, org, Role.COORDINATOR)
        session.commit()
        created.append(org.id)
    errors = []
    # Ids come back after a purge on SQLite and audit rows are never purged: count this test's own action.
    action = f"test.concurrent.{org.id}.{uuid.uuid4().hex[:8]}"

    def writer():
        try:
            for _ in range(10):
                with factory() as session:
                    audit.record(session, actor=user, action=action, target=("patients", 1))
                    session.commit()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with factory() as session:
        assert audit.verify(session) == []
        assert session.query(AuditEvent).filter_by(action=action).count() == 80


def test_details_hold_no_health_content_by_construction(db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    event = audit.record(
        db_session, actor=user, action="patient.update", target=("patients", 1), details={"fields": ["phone"]}
    )
    assert event.details == '{"fields": ["phone"]}'
