"""S12/S13/S18: the audit log — rows kept iff their transaction commits, chained by one sequencer at a time with a
keyed hash, checkpointed outside the database, and tamper-evident against the tables' owner."""

import datetime as dt
import json
import sqlite3
import threading
import uuid

import pytest
from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from hub import audit, migrate
from hub.db import make_engine, update_by_id, update_by_id_if_unchanged
from hub.models import AuditEvent, AuditLink, AuditUnchained, IdempotentRequest, Profession, Role, User
from hub.services import accounts
from tests import factories
from tests.queries import count_queries

KEY = audit.DEVELOPMENT_KEY


def _write_some(session, user, n=3) -> list[int]:
    start = session.scalar(select(func.max(AuditEvent.id))) or 0
    for i in range(n):
        audit.record(session, actor=user, action="patient.read", target=("patients", i))
    session.commit()
    return list(session.scalars(select(AuditEvent.id).where(AuditEvent.id > start).order_by(AuditEvent.id)))


def _chain_all(session) -> audit.ChainHead | None:
    head = None
    while (step := audit.chain_pending(session, key=KEY)) is not None:
        head = step
    return head


def _link_of(session, event_id: int) -> AuditLink:
    return session.scalars(select(AuditLink).where(AuditLink.event_id == event_id)).one()


def _reasons(session, checkpoint_file=None) -> list[str]:
    return [b.reason for b in audit.verify(session, key=KEY, checkpoint_file=checkpoint_file).breaks]


def test_rows_are_written_only_when_the_transaction_commits(db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    db_session.commit()
    count = db_session.query(AuditEvent).count()
    audit.record(db_session, actor=user, action="patient.read", target=("patients", 1))
    db_session.rollback()
    db_session.commit()
    assert db_session.query(AuditEvent).count() == count
    audit.record(db_session, actor=user, action="patient.read", target=("patients", 2))
    db_session.commit()
    assert db_session.query(AuditEvent).count() == count + 1


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
    _chain_all(db_session)
    assert _reasons(db_session) == []


def test_a_row_kept_on_rollback_survives_a_commit_that_fails(db_session, cpts):
    """The commit itself fails (here its final flush breaks a unique constraint, after the audit rows were
    inserted in the doomed transaction): the kept row is written at the next commit, the other one never."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    other = factories.user(db_session, cpts, Role.COORDINATOR)
    db_session.commit()
    start = db_session.query(func.max(AuditEvent.id)).scalar() or 0
    audit.record(
        db_session, actor=user, action="patient.duplicate_check", target=("patients", 7), kept_on_rollback=True
    )
    audit.record(db_session, actor=user, action="patient.create", target=("patients", 8))
    other.login = user.login
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()
    db_session.commit()
    db_session.commit()
    actions = [e.action for e in db_session.query(AuditEvent).filter(AuditEvent.id > start)]
    assert actions == ["patient.duplicate_check"]


def _actions_after(session, start: int) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).where(AuditEvent.id > start).order_by(AuditEvent.id)))


class _Refused(Exception):
    pass


def test_a_savepoint_rolled_back_drops_only_the_rows_queued_in_it(db_session, cpts):
    """A series books each occurrence in its savepoint: one refused keeps the rows the others queued."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    db_session.commit()
    start = db_session.query(func.max(AuditEvent.id)).scalar() or 0
    audit.record(db_session, actor=user, action="before")
    with pytest.raises(_Refused), db_session.begin_nested():
        audit.record(db_session, actor=user, action="refused")
        raise _Refused
    audit.record(db_session, actor=user, action="after")
    db_session.commit()
    assert _actions_after(db_session, start) == ["before", "after"]


def test_a_flush_failing_in_a_savepoint_drops_only_the_rows_queued_in_it(db_session, cpts):
    """The flush's own subtransaction fails: the savepoint around it is what rolls back, not the transaction."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    db_session.add(IdempotentRequest(user_id=user.id, key="k", request_hash="h", status=0, body=""))
    db_session.commit()
    start = db_session.query(func.max(AuditEvent.id)).scalar() or 0
    audit.record(db_session, actor=user, action="before")
    with pytest.raises(IntegrityError), db_session.begin_nested():
        audit.record(db_session, actor=user, action="refused")
        db_session.add(IdempotentRequest(user_id=user.id, key="k", request_hash="h", status=0, body=""))
        db_session.flush()
    audit.record(db_session, actor=user, action="after")
    db_session.commit()
    assert _actions_after(db_session, start) == ["before", "after"]


def test_savepoints_within_savepoints_keep_what_their_own_rollback_does_not_undo(db_session, cpts):
    """A savepoint released writes nothing yet: its rows go with an enclosing savepoint rolled back, and those
    queued before that one stay."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    db_session.commit()
    start = db_session.query(func.max(AuditEvent.id)).scalar() or 0
    audit.record(db_session, actor=user, action="first")
    with pytest.raises(_Refused), db_session.begin_nested():
        audit.record(db_session, actor=user, action="outer")
        with db_session.begin_nested():
            audit.record(db_session, actor=user, action="released")
        raise _Refused
    with db_session.begin_nested():
        audit.record(db_session, actor=user, action="kept")
        with pytest.raises(_Refused), db_session.begin_nested():
            audit.record(db_session, actor=user, action="inner")
            raise _Refused
    db_session.commit()
    assert _actions_after(db_session, start) == ["first", "kept"]


def test_a_row_kept_on_rollback_outlives_a_savepoint_released_before_the_rollback(db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    db_session.commit()
    start = db_session.query(func.max(AuditEvent.id)).scalar() or 0
    audit.record(db_session, actor=user, action="patient.duplicate_check", kept_on_rollback=True)
    audit.record(db_session, actor=user, action="patient.create")
    with db_session.begin_nested():
        audit.record(db_session, actor=user, action="patient.note")
    db_session.rollback()
    db_session.commit()
    assert _actions_after(db_session, start) == ["patient.duplicate_check"]


def test_rows_taken_by_a_write_are_inserted_by_its_statement_and_kept_iff_its_transaction_commits(db_session, cpts):
    """hub.audit.take_queued (issue 17, P7): on PostgreSQL the rows queued so far are inserted, in their order, by
    the write's own statement (hub.db.update_by_id's `inserting`), and go with its transaction's rollback; on SQLite
    and inside a savepoint nothing is taken, the rows are written at the commit. The same rows either way."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    db_session.commit()
    start = db_session.query(func.max(AuditEvent.id)).scalar() or 0
    taking = db_session.get_bind().dialect.name == "postgresql"
    for ending in (db_session.rollback, db_session.commit):
        audit.record(db_session, actor=user, action="first")
        audit.record(db_session, actor=user, action="written", target=user)
        taken = audit.take_queued(db_session)
        assert [row["action"] for _table, row in taken] == (["first", "written"] if taking else [])
        with count_queries(db_session.get_bind()) as sent:
            update_by_id(db_session, User, user.id, {"is_active": True}, inserting=taken)
        assert [s.split()[0] for s in sent] == ["WITH" if taking else "UPDATE"], sent
        audit.record(db_session, actor=user, action="after")
        ending()
    assert _actions_after(db_session, start) == ["first", "written", "after"]
    with db_session.begin_nested():
        audit.record(db_session, actor=user, action="in a savepoint")
        assert audit.take_queued(db_session) == []
    # Rows given to update_by_id are inserted with it on any database (on SQLite by an INSERT of their own): before
    # the row still queued for the commit.
    row = audit.event_row(actor=user, action="given")
    update_by_id(db_session, User, user.id, {"is_active": True}, inserting=[(AuditEvent.__table__, row)])
    db_session.commit()
    assert _actions_after(db_session, start) == ["first", "written", "after", "given", "in a savepoint"]


def test_a_conditional_write_inserts_its_rows_only_if_it_changed_its_row(db_session, cpts):
    """hub.db.update_by_id_if_unchanged: a row no longer as read is left alone and none of the rows given to the
    write is inserted (on PostgreSQL they select from the UPDATE's RETURNING, none when it matched no row); a row
    still as read is changed and the rows inserted, in their order, by the same statement on PostgreSQL."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    db_session.commit()
    start = db_session.query(func.max(AuditEvent.id)).scalar() or 0
    rows = [(AuditEvent.__table__, audit.event_row(actor=user, action=action)) for action in ("one", "two")]
    for was_active in (False, True):
        with count_queries(db_session.get_bind()) as sent:
            written = update_by_id_if_unchanged(
                db_session, User, user.id, {"is_active": False}, unchanged={"is_active": was_active}, inserting=rows
            )
        assert (written is None) is not was_active
        assert len(sent) == (1 if db_session.get_bind().dialect.name == "postgresql" or not was_active else 3), sent
    db_session.commit()
    db_session.expire_all()
    assert not db_session.get(User, user.id).is_active
    assert _actions_after(db_session, start) == ["one", "two"]


def test_a_write_along_an_update_may_not_touch_its_table(db_session, cpts):
    """update_by_id's `along` runs before the UPDATE on SQLite and beside it on PostgreSQL: one on the updated
    table would behave differently on each, so it is refused before anything runs."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    same_table = update(User.__table__).where(User.id == bindparam("other_id")).values(is_active=False)
    with pytest.raises(ValueError, match="users"):
        update_by_id(db_session, User, user.id, {"is_active": True}, along=[(same_table, {"other_id": user.id})])


@pytest.mark.parametrize("dialect", [postgresql.psycopg.dialect(), sqlite.pysqlite.dialect()])
def test_the_audit_insert_returns_nothing(dialect):
    """Nobody reads the new rows' ids: an INSERT … RETURNING would make PostgreSQL send them back for each row."""
    keys = list(audit.event_row(actor=None, action="patient.read"))
    sql = str(audit._INSERT_EVENTS.compile(dialect=dialect, column_keys=keys))
    assert sql.startswith("INSERT INTO audit_events") and "RETURNING" not in sql.upper()


def test_a_committed_api_read_has_its_row_then_its_link(client, db_session, cpts):
    gp = factories.clinician(db_session, cpts, Profession.GENERAL_PRACTITIONER)
    patient = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    _row, raw = accounts.create_api_token(db_session, gp, name="tests")
    db_session.commit()
    start = db_session.scalar(select(func.max(AuditEvent.id))) or 0
    response = client.get(f"/api/v1/patients/{patient.id}", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 200
    rows = db_session.execute(select(AuditEvent.id, AuditEvent.action).where(AuditEvent.id > start)).all()
    assert [action for _id, action in rows] == ["patient.read"]
    _chain_all(db_session)
    assert _link_of(db_session, rows[0].id).mac


def test_the_sequencer_links_every_row_once_in_id_order_with_a_keyed_mac(db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    ids = _write_some(db_session, user)
    head = _chain_all(db_session)
    links = [_link_of(db_session, i) for i in ids]
    assert [link.seq for link in links] == list(range(links[0].seq, links[0].seq + 3))
    assert head is not None and (head.seq, head.mac) == (links[-1].seq, links[-1].mac)
    assert audit.chain_pending(db_session, key=KEY) is None, "nothing left to chain"
    result = audit.verify(db_session, key=KEY)
    assert (result.breaks, result.pending) == ([], 0)
    other_key = audit.verify(db_session, key=b"another key").breaks
    assert other_key and all("mac faux" in b.reason for b in other_key), "the mac depends on the key"


def _insert_event(session, event_id: int) -> None:
    session.execute(
        text(
            "INSERT INTO audit_events (id, occurred_at, actor_label, action, outcome, details) "
            "VALUES (:id, :at, 'test', 'test.late', 'success', '{}')"
        ),
        {"id": event_id, "at": dt.datetime.now(dt.UTC).replace(tzinfo=None)},
    )


def test_a_row_committed_late_with_a_lower_id_is_chained_after_the_higher_one(db_session, cpts):
    """On PostgreSQL a transaction may take its id before another and commit after it."""
    _write_some(db_session, factories.user(db_session, cpts, Role.COORDINATOR), n=1)
    _chain_all(db_session)
    top = db_session.scalar(select(func.max(AuditEvent.id)))
    _insert_event(db_session, top + 50)
    assert audit.chain_pending(db_session, key=KEY) is not None
    _insert_event(db_session, top + 25)
    assert audit.chain_pending(db_session, key=KEY) is not None
    assert _link_of(db_session, top + 25).seq == _link_of(db_session, top + 50).seq + 1
    assert _reasons(db_session) == []


def test_the_worker_sequencer_finds_a_row_committed_late_however_far_below_the_chained_ids(db_session, cpts):
    """The worker's pass (run_sequencer, as the leader runs it) chains a row whose transaction committed after
    20,000 higher ids had been chained: no look-back window leaves it to a manual verify."""
    _write_some(db_session, factories.user(db_session, cpts, Role.COORDINATOR), n=1)
    _chain_all(db_session)
    top = db_session.scalar(select(func.max(AuditEvent.id)))
    _insert_event(db_session, top + 20_050)
    db_session.commit()
    assert audit.run_sequencer(lambda: factories.Borrowed(db_session), key=KEY, checkpoint_file=None) == 1
    _insert_event(db_session, top + 25)
    db_session.commit()
    assert audit.run_sequencer(lambda: factories.Borrowed(db_session), key=KEY, checkpoint_file=None) == 1
    assert _link_of(db_session, top + 25).seq == _link_of(db_session, top + 20_050).seq + 1
    assert db_session.scalar(select(func.count()).select_from(AuditUnchained)) == 0, "markers go with the links"
    assert _reasons(db_session) == []


def _unlock(session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # The owner's rights: lift the append-only triggers, inside this rolled-back test only.
        session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        session.execute(text("ALTER TABLE audit_chain DISABLE TRIGGER audit_chain_append_only"))


def test_a_rewritten_row_is_detected(db_session, cpts):
    ids = _write_some(db_session, factories.user(db_session, cpts, Role.COORDINATOR))
    _chain_all(db_session)
    _unlock(db_session)
    db_session.execute(text("UPDATE audit_events SET target_id = '999' WHERE id = :id"), {"id": ids[1]})
    seq = _link_of(db_session, ids[1]).seq
    breaks = audit.verify(db_session, key=KEY).breaks
    assert [(b.seq, b.reason) for b in breaks] == [
        (seq, f"l'événement {ids[1]} ou le maillon a été modifié (mac faux)")
    ]


def test_a_deleted_middle_row_is_detected(db_session, cpts):
    ids = _write_some(db_session, factories.user(db_session, cpts, Role.COORDINATOR))
    _chain_all(db_session)
    seq = _link_of(db_session, ids[1]).seq
    _unlock(db_session)
    db_session.execute(text("DELETE FROM audit_chain WHERE event_id = :id"), {"id": ids[1]})
    db_session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[1]})
    breaks = audit.verify(db_session, key=KEY).breaks
    assert (seq + 1, f"les maillons {seq} à {seq} manquent") in [(b.seq, b.reason) for b in breaks]
    assert (seq + 1, f"l'événement {ids[2]} ou le maillon a été modifié (mac faux)") in [
        (b.seq, b.reason) for b in breaks
    ]


def test_a_deleted_tail_is_detected_by_the_checkpoint_outside_the_database(db_session, cpts, tmp_path):
    checkpoints = tmp_path / "audit-checkpoints.jsonl"
    ids = _write_some(db_session, factories.user(db_session, cpts, Role.COORDINATOR))
    head = _chain_all(db_session)
    assert head is not None
    audit.append_checkpoint(checkpoints, key=KEY, head=head, at=dt.datetime.now(dt.UTC))
    assert _reasons(db_session, checkpoints) == []
    _unlock(db_session)
    db_session.execute(text("DELETE FROM audit_chain WHERE event_id >= :id"), {"id": ids[1]})
    db_session.execute(text("DELETE FROM audit_events WHERE id >= :id"), {"id": ids[1]})
    assert _reasons(db_session) == [], "without the checkpoint a clean cut is invisible: the checkpoint is the proof"
    assert _reasons(db_session, checkpoints) == [
        f"la chaîne s'arrête au maillon {head.seq - 2} alors qu'un point de contrôle atteste le maillon {head.seq} : "
        "sa fin a été supprimée"
    ]


def test_a_forged_or_rewritten_checkpoint_is_detected(db_session, cpts, tmp_path):
    checkpoints = tmp_path / "audit-checkpoints.jsonl"
    _write_some(db_session, factories.user(db_session, cpts, Role.COORDINATOR))
    head = _chain_all(db_session)
    assert head is not None
    audit.append_checkpoint(checkpoints, key=KEY, head=head, at=dt.datetime.now(dt.UTC))
    line = json.loads(checkpoints.read_text())
    checkpoints.write_text(json.dumps({**line, "seq": head.seq - 1}) + "\n")
    assert _reasons(db_session, checkpoints) == [f"point de contrôle à la signature fausse, ligne 1 de {checkpoints}"]
    audit.append_checkpoint(
        checkpoints, key=KEY, head=audit.ChainHead(head.seq, "f" * 64, 1), at=dt.datetime.now(dt.UTC)
    )
    assert "le maillon diffère du point de contrôle enregistré hors de la base" in _reasons(db_session, checkpoints)


def test_an_unchained_row_is_pending_while_marked_or_young_then_a_break(db_session, cpts):
    """A row the sequencer still has to chain (its marker) is pending, the verification intact, until it waited
    past PENDING_STALL: then the sequencer no longer runs, and the verification is stalled — no break, but not
    intact either (review 2, #2). Without its marker it would never be chained: a break once no longer young."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    _chain_all(db_session)
    [event_id] = _write_some(db_session, user, n=1)
    occurred_at = db_session.get(AuditEvent, event_id).occurred_at
    young = audit.verify(db_session, key=KEY)
    assert (young.breaks, young.pending, young.stalled, young.intact) == ([], 1, False, True)
    assert young.oldest_pending_at == occurred_at
    later = dt.datetime.now(dt.UTC) + audit.PENDING_GRACE + dt.timedelta(seconds=1)
    old_but_marked = audit.verify(db_session, key=KEY, now=later)
    assert (old_but_marked.breaks, old_but_marked.pending, old_but_marked.intact) == ([], 1, True)
    stalled = audit.verify(db_session, key=KEY, now=occurred_at + audit.PENDING_STALL + dt.timedelta(seconds=1))
    assert (stalled.breaks, stalled.pending, stalled.stalled, stalled.intact) == ([], 1, True, False)
    assert stalled.oldest_pending_at == occurred_at
    db_session.execute(delete(AuditUnchained).where(AuditUnchained.event_id == event_id))
    young_unmarked = audit.verify(db_session, key=KEY)
    assert (young_unmarked.breaks, young_unmarked.pending) == ([], 1)
    old = audit.verify(db_session, key=KEY, now=later)
    assert [b.reason for b in old.breaks] == [f"l'événement {event_id} n'est enchaîné à aucun maillon"]


def test_a_stray_marker_neither_stops_the_sequencer_nor_fails_the_verification(db_session, cpts, tmp_path):
    """A marker for a row already linked (the application role may insert markers: the trigger needs it): the
    sequencer skips and drops it, chains what comes next, and the verification finds nothing wrong. A marker for
    no row is skipped too, but kept and reported (see the next test)."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    checkpoints = tmp_path / "c.jsonl"

    def factory():
        return factories.Borrowed(db_session)

    [chained] = _write_some(db_session, user, n=1)
    assert audit.run_sequencer(factory, key=KEY, checkpoint_file=checkpoints) >= 1
    db_session.execute(text("INSERT INTO audit_unchained (event_id) VALUES (:id)"), {"id": chained})
    db_session.execute(text("INSERT INTO audit_unchained (event_id) VALUES (:id)"), {"id": chained + 10**9})
    db_session.commit()
    assert [b.kind for b in audit.verify(db_session, key=KEY, checkpoint_file=checkpoints).breaks] == [
        audit.BreakKind.DELETED_UNCHAINED
    ], "only the marker without a row"
    [after] = _write_some(db_session, user, n=1)
    assert audit.run_sequencer(factory, key=KEY, checkpoint_file=checkpoints) == 1
    assert _link_of(db_session, after).seq == _link_of(db_session, chained).seq + 1
    assert db_session.scalars(select(AuditUnchained.event_id)).all() == [chained + 10**9], "the linked one dropped"
    db_session.execute(delete(AuditUnchained))
    _linked, result = audit.seal_and_verify(factory, key=KEY, checkpoint_file=checkpoints)
    assert result.breaks == []


def test_a_row_deleted_before_it_was_chained_keeps_its_marker_and_is_a_break(db_session, cpts):
    """The trigger writes the marker in the row's own transaction: a marker without its row is the trace of a row
    the tables' owner deleted before the sequencer chained it. The sequencer keeps it, the verification names it
    (review 2, #3)."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    _chain_all(db_session)
    [event_id] = _write_some(db_session, user, n=1)
    _unlock(db_session)
    db_session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": event_id})
    db_session.commit()
    audit.run_sequencer(lambda: factories.Borrowed(db_session), key=KEY, checkpoint_file=None)
    assert db_session.scalars(select(AuditUnchained.event_id)).all() == [event_id], "the marker kept"
    breaks = audit.verify(db_session, key=KEY).breaks
    assert [(b.seq, b.kind, b.reason) for b in breaks] == [
        (
            None,
            audit.BreakKind.DELETED_UNCHAINED,
            f"l'événement {event_id}, marqué à son écriture, a disparu avant son enchaînement",
        )
    ]
    assert audit.BREAK_KIND_LABELS[breaks[0].kind] == "Ligne supprimée avant enchaînement"


def test_a_stray_marker_is_dropped_even_when_nothing_waits(db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    [chained] = _write_some(db_session, user, n=1)
    audit.run_sequencer(lambda: factories.Borrowed(db_session), key=KEY, checkpoint_file=None)
    db_session.execute(text("INSERT INTO audit_unchained (event_id) VALUES (:id)"), {"id": chained})
    db_session.commit()
    assert audit.run_sequencer(lambda: factories.Borrowed(db_session), key=KEY, checkpoint_file=None) == 0
    assert db_session.scalars(select(AuditUnchained.event_id)).all() == []


def _cli_verify(app, monkeypatch, checkpoints):
    from types import MappingProxyType

    monkeypatch.setitem(
        app.config, "HUB", MappingProxyType({**app.config["HUB"], "AUDIT_CHECKPOINT_FILE": str(checkpoints)})
    )
    return app.test_cli_runner().invoke(args=["hub", "audit", "verify"])


def test_cli_chains_pending_rows_then_exits_non_zero_on_a_broken_chain(app, db_session, cpts, tmp_path, monkeypatch):
    checkpoints = tmp_path / "audit-checkpoints.jsonl"
    ids = _write_some(db_session, factories.user(db_session, cpts, Role.COORDINATOR))
    ok = _cli_verify(app, monkeypatch, checkpoints)
    assert ok.exit_code == 0, ok.output
    assert "Journal d'audit intègre" in ok.output
    assert _link_of(db_session, ids[-1]).seq, "verify chained the pending rows first"
    assert checkpoints.read_text().count("\n") >= 1, "and checkpointed the new head"
    verification = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.verify")).one()
    assert (verification.actor_label, verification.outcome) == ("flask hub audit verify", "success")
    _unlock(db_session)
    db_session.execute(text("UPDATE audit_events SET action = 'x' WHERE id = :id"), {"id": ids[0]})
    db_session.commit()
    broken = _cli_verify(app, monkeypatch, checkpoints)
    assert broken.exit_code == 1
    seq = _link_of(db_session, ids[0]).seq
    assert f"rupture au maillon {seq} : l'événement {ids[0]} ou le maillon a été modifié" in broken.output
    assert "Journal d'audit altéré : 1 rupture(s)" in broken.output


def test_cli_exits_non_zero_when_rows_it_could_not_chain_wait_too_long(app, db_session, cpts, tmp_path, monkeypatch):
    """Normally the CLI chains first, so nothing stalls there; a sequencer that chains nothing (here replaced, as
    one kept from its lock would) leaves the old row waiting, and the CLI says so rather than « intègre »."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    row = audit.record(db_session, actor=user, action="patient.read", target=("patients", 1))
    row["occurred_at"] = dt.datetime.now(dt.UTC) - audit.PENDING_STALL - dt.timedelta(minutes=1)
    db_session.commit()
    monkeypatch.setattr(audit, "run_sequencer", lambda *args, **kwargs: 0)
    result = _cli_verify(app, monkeypatch, tmp_path / "c.jsonl")
    assert result.exit_code == 1, result.output
    assert "Enchaînement arrêté : des lignes attendent depuis" in result.output
    assert "Journal d'audit intègre" not in result.output


@pytest.mark.parametrize("table", ["audit_events", "audit_chain"])
@pytest.mark.parametrize("verb", ["UPDATE {table} SET {column} = {column}", "DELETE FROM {table}"])
def test_postgresql_refuses_update_and_delete_of_audit_rows_even_to_the_owner(db_session, cpts, table, verb):
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("the append-only triggers are PostgreSQL's")
    _write_some(db_session, factories.user(db_session, cpts, Role.COORDINATOR), n=1)
    _chain_all(db_session)
    statement = verb.format(table=table, column="mac" if table == "audit_chain" else "action")
    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(text(statement))


REFUSED_TO_THE_APPLICATION = (
    "UPDATE audit_events SET action = 'x'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
    "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    "UPDATE audit_chain SET mac = 'x'",
    "DELETE FROM audit_chain",
    "TRUNCATE audit_chain",
    "ALTER TABLE audit_chain DISABLE TRIGGER audit_chain_append_only",
    "DROP TABLE audit_chain",
)


def test_the_application_role_can_append_and_read_the_audit_tables_and_nothing_more(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("roles are PostgreSQL's")
    role = f"hub_app_test_{uuid.uuid4().hex[:8]}"
    owner = make_engine(engine.url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        migrate.grant_application_role(conn, role)
    app_engine = make_engine(
        make_url(engine.url).set(username=role, password=None).render_as_string(hide_password=False)
    )
    try:
        with app_engine.connect() as conn, conn.begin() as transaction:
            event_id = conn.scalar(
                text(
                    "INSERT INTO audit_events (occurred_at, actor_label, action, outcome, details) "
                    "VALUES (now(), 'test', 'role.test', 'success', '{}') RETURNING id"
                )
            )
            conn.execute(text("INSERT INTO audit_chain (seq, event_id, mac) VALUES (-1, :id, 'x')"), {"id": event_id})
            assert conn.scalar(text("SELECT count(*) FROM audit_chain WHERE seq = -1")) == 1
            conn.execute(text("UPDATE outbox_messages SET attempts = attempts WHERE false")), "other tables: read-write"
            transaction.rollback()
        for statement in REFUSED_TO_THE_APPLICATION:
            with app_engine.connect() as conn, pytest.raises(DBAPIError, match=r"permission denied|must be owner"):
                conn.execute(text(statement))
        # A table a later migration creates (the owner's) is the application's without a new grant.
        with owner.connect() as conn:
            conn.execute(text("CREATE TABLE role_test_later (id serial PRIMARY KEY, note text)"))
        with app_engine.connect() as conn, conn.begin():
            conn.execute(text("INSERT INTO role_test_later (note) VALUES ('x')"))
            assert conn.scalar(text("SELECT count(*) FROM role_test_later")) == 1
    finally:
        app_engine.dispose()
        with owner.connect() as conn:
            conn.execute(text("DROP TABLE IF EXISTS role_test_later"))
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
        owner.dispose()


def test_concurrent_writers_and_two_sequencers_leave_one_valid_chain(committed, tmp_path):
    """Eight writers commit while two sequencers run at once: each row is linked once, the chain verifies, and so
    does every checkpoint. Without the sequencer's lock (PostgreSQL) two runs take the same head and collide."""
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        user = factories.user(session, org, Role.COORDINATOR)
        session.commit()
        created.append(org.id)
    checkpoints = tmp_path / "audit-checkpoints.jsonl"
    errors: list[Exception] = []
    # Ids come back after a purge on SQLite and audit rows are never purged: count this test's own action.
    action = f"test.concurrent.{org.id}.{uuid.uuid4().hex[:8]}"
    writing = threading.Event()
    writing.set()

    def writer():
        try:
            for _ in range(15):
                with factory() as session:
                    audit.record(session, actor=user, action=action, target=("patients", 1))
                    session.commit()
        except Exception as exc:
            errors.append(exc)

    def sequencer():
        try:
            while writing.is_set():
                audit.run_sequencer(factory, key=KEY, checkpoint_file=checkpoints)
        except Exception as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer) for _ in range(8)]
    sequencers = [threading.Thread(target=sequencer) for _ in range(2)]
    for thread in writers + sequencers:
        thread.start()
    for thread in writers:
        thread.join()
    writing.clear()
    for thread in sequencers:
        thread.join()
    assert errors == []
    audit.run_sequencer(factory, key=KEY, checkpoint_file=checkpoints)
    with factory() as session:
        result = audit.verify(session, key=KEY, checkpoint_file=checkpoints)
        assert result.breaks == []
        assert result.checkpoints >= 2
        linked = select(func.count(AuditLink.seq)).join(AuditEvent, AuditEvent.id == AuditLink.event_id)
        assert session.scalar(linked.where(AuditEvent.action == action)) == 120


def test_details_hold_no_health_content_by_construction(db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    row = audit.record(
        db_session, actor=user, action="patient.update", target=("patients", 1), details={"fields": ["phone"]}
    )
    assert row["details"] == '{"fields": ["phone"]}'


def test_production_refuses_to_start_without_an_audit_key(tmp_path):
    from hub.config import ConfigError, load_config

    production = {"ENV": "production", "SECRET_KEY": "x" * 40, "DATABASE_URL": "sqlite:///:memory:"}
    with pytest.raises(ConfigError, match="HUB_AUDIT_KEY"):
        load_config(tmp_path, production)
    with pytest.raises(ConfigError, match="HUB_AUDIT_KEY"):
        load_config(tmp_path, production | {"AUDIT_KEY": "short"})
    config = load_config(tmp_path, production | {"AUDIT_KEY": "k" * 40})
    assert audit.key_bytes(config) == b"k" * 40
    assert audit.checkpoint_path(config) == tmp_path / "audit-checkpoints.jsonl"
    development = load_config(tmp_path, {"ENV": "development", "DATABASE_URL": "sqlite:///:memory:"})
    assert audit.key_bytes(development) == audit.DEVELOPMENT_KEY


def test_on_sqlite_the_verification_walk_keeps_no_writer_waiting(committed, engine):
    """While `seal_and_verify` walks the chain, another connection appends an audit row at once: the walk's
    transaction is a deferred read (hub.db.READ_ONLY), not the BEGIN IMMEDIATE that every other one takes."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's readers never block its writers")
    factory, _created = committed
    database = engine.url.database
    written: list[str] = []

    def write_while_walking(_conn, _cursor, statement, *_args):
        if "FROM audit_chain LEFT OUTER JOIN audit_events" in statement and not written:
            writer = sqlite3.connect(database, timeout=0.2, isolation_level=None)
            try:
                writer.execute("BEGIN IMMEDIATE")
                writer.execute(
                    "INSERT INTO audit_events (occurred_at, actor_label, action, outcome, details) "
                    "VALUES (?, 'test', 'test.during_walk', 'success', '{}')",
                    (dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),),
                )
                writer.execute("COMMIT")
                written.append("written")
            except sqlite3.OperationalError as error:
                written.append(str(error))
            finally:
                writer.close()

    sa_event.listen(engine, "after_cursor_execute", write_while_walking)
    try:
        audit.seal_and_verify(factory, key=KEY)
    finally:
        sa_event.remove(engine, "after_cursor_execute", write_while_walking)
    assert written == ["written"]
