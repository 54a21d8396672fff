"""« Journal d'audit » for the CPTS's administrator: the chain's state, where checkpoints go, and « Vérifier la
chaîne maintenant » — which walks the chain without chaining (the worker does), names each break in French, runs
one at a time for the whole hub and is itself audited; an administrator sees the verifications of their own CPTS and
the CLI's only."""

import contextlib
import datetime as dt
import html
import json
from collections.abc import Iterator
from types import MappingProxyType

import pytest
from sqlalchemy import func, select, text

from hub import audit
from hub.db import utcnow
from hub.models import AuditEvent, AuditLink, Role, SchedulerLease
from hub.services import audit_chain
from tests import factories


@pytest.fixture
def checkpoints(app, tmp_path, monkeypatch):
    """This test's own checkpoint file: the session's shared one attests heads that rolled-back tests chained."""
    path = tmp_path / "checkpoints" / "audit.jsonl"
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "AUDIT_CHECKPOINT_FILE": str(path)}))
    return path


def rewrite_a_chained_row(db_session, cpts) -> tuple[int, int]:
    """As the tables' owner would: lift the append-only trigger and change a row the sequencer already chained.
    Returns the row's id and its link's seq."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    audit.record(db_session, actor=user, action="patient.read", target=("patients", 1))
    db_session.commit()
    audit.run_sequencer(lambda: factories.Borrowed(db_session), key=audit.DEVELOPMENT_KEY, checkpoint_file=None)
    # The newest: an earlier test's committed rows may name a user of the same id (SQLite reuses purged ids).
    event_id = db_session.scalar(select(func.max(AuditEvent.id)).where(AuditEvent.actor_user_id == user.id))
    if db_session.get_bind().dialect.name == "postgresql":
        db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    db_session.execute(text("UPDATE audit_events SET target_id = '2' WHERE id = :id"), {"id": event_id})
    db_session.commit()
    seq = db_session.scalar(select(AuditLink.seq).where(AuditLink.event_id == event_id))
    return event_id, seq


def a_row_the_sequencer_left_waiting(db_session, cpts) -> dt.datetime:
    """A row recorded (and marked) past PENDING_STALL ago and never chained: the sequencer stopped running.
    Returns when it was recorded."""
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    row = audit.record(db_session, actor=user, action="patient.read", target=("patients", 1))
    row["occurred_at"] = utcnow() - audit.PENDING_STALL - dt.timedelta(minutes=1)
    db_session.commit()
    return row["occurred_at"]


@contextlib.contextmanager
def another_verification_running(app, engine) -> Iterator[None]:
    """Hold the page's one-at-a-time lock as a verification on another web worker would: on PostgreSQL from a
    connection of its own (the test's requests share the test's, where an advisory lock is re-entrant)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as other:
            other.execute(text("SELECT pg_advisory_lock(:key)"), {"key": audit_chain._VERIFY_LOCK_KEY})
            try:
                yield
            finally:
                other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": audit_chain._VERIFY_LOCK_KEY})
    else:
        with audit_chain._one_walk_at_a_time(app.extensions["hub.sessions"]):
            yield


def test_the_admin_reaches_the_page_from_the_administration(auth, admin):
    auth.login(admin)
    body = html.unescape(auth.client.get("/admin").get_data(as_text=True))
    assert 'href="/admin/journal-audit"' in body


def test_the_page_shows_the_state_and_warns_that_no_checkpoint_was_written(auth, admin, checkpoints):
    auth.login(admin)
    response = auth.client.get("/admin/journal-audit")
    body = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 200
    assert "<h1" in body and "Journal d'audit" in body
    assert "Lignes enchaînées" in body and "En attente d'enchaînement" in body
    assert str(checkpoints) in body
    assert "Le fichier des points de contrôle n'existe pas" in body
    assert "Vérifier la chaîne maintenant" in body


def test_verifying_walks_only_what_waits_is_pending_for_the_worker_and_it_is_audited(
    auth, admin, db_session, checkpoints
):
    """A web node neither chains nor checkpoints: its checkpoint file would not be the workers'."""
    auth.login(admin)
    links = db_session.scalar(select(func.count()).select_from(AuditLink))
    response = auth.post("/admin/journal-audit/verifier")
    assert response.status_code == 302
    page = html.unescape(auth.client.get(response.headers["Location"]).get_data(as_text=True))
    assert "Chaîne intègre" in page and "ligne(s) en attente, que le worker enchaîne" in page
    assert f"par {admin.login}" in page and "chaîne intègre" in page
    assert db_session.scalar(select(func.count()).select_from(AuditLink)) == links, "nothing chained by the page"
    assert not checkpoints.exists(), "no checkpoint written by a web node"
    row = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.verify")).one()
    assert (row.actor_user_id, row.outcome) == (admin.id, "success")


def test_rows_the_sequencer_left_waiting_too_long_make_the_verdict_a_stall_not_intact(
    auth, admin, db_session, cpts, checkpoints
):
    """Review 2, #2: a stopped sequencer must not read « Chaîne intègre » for days."""
    since = a_row_the_sequencer_left_waiting(db_session, cpts)
    auth.login(admin)
    response = auth.post("/admin/journal-audit/verifier")
    page = html.unescape(auth.client.get(response.headers["Location"]).get_data(as_text=True))
    assert "Enchaînement arrêté" in page and "hors de la protection de la chaîne" in page
    assert "Chaîne intègre" not in page and "chaîne intègre" not in page
    assert "enchaînement\n    arrêté</strong>, des lignes attendaient depuis" in page
    row = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.verify")).one()
    assert row.outcome == "failure"
    assert dt.datetime.fromisoformat(json.loads(row.details)["stalled_since"]) == since


def test_a_second_verification_while_one_runs_is_refused_in_french(app, engine, auth, admin, db_session, checkpoints):
    auth.login(admin)
    with another_verification_running(app, engine):
        response = auth.post("/admin/journal-audit/verifier")
    assert response.status_code == 409
    assert "Une vérification de la chaîne est déjà en cours" in html.unescape(response.get_data(as_text=True))
    assert db_session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.verify")).all() == []
    assert auth.post("/admin/journal-audit/verifier").status_code == 302, "the lock is released after a run"
    assert auth.post("/admin/journal-audit/verifier").status_code == 302


def test_on_sqlite_the_lease_a_killed_verification_left_lapses(engine, auth, admin, db_session, checkpoints):
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's advisory lock goes with a killed web worker's connection")
    lease = SchedulerLease(name=audit_chain.VERIFY_LEASE_NAME, holder="killed", expires_at=utcnow() + dt.timedelta(1))
    db_session.add(lease)
    db_session.commit()
    auth.login(admin)
    assert auth.post("/admin/journal-audit/verifier").status_code == 409
    lease.expires_at = utcnow() - dt.timedelta(seconds=1)
    db_session.commit()
    assert auth.post("/admin/journal-audit/verifier").status_code == 302
    assert db_session.scalars(select(SchedulerLease).where(SchedulerLease.holder == "killed")).all() == []


def test_an_administrator_sees_the_verifications_of_their_cpts_and_the_clis_only(
    auth, admin, db_session, cpts, checkpoints
):
    other_admin = factories.user(db_session, factories.cpts(db_session), Role.ADMIN)
    details = {"breaks": 0, "length": 7, "linked": 0, "seconds": 0.1, "named": []}
    audit.record(db_session, actor="flask hub audit verify", action="audit.verify", details=details)
    db_session.commit()
    auth.login(admin)
    assert "par flask hub audit verify :" in html.unescape(
        auth.client.get("/admin/journal-audit").get_data(as_text=True)
    )
    broken = details | {"breaks": 1, "named": [{"seq": 3, "kind": "rewritten", "reason": "l'événement 3 …"}]}
    audit.record(db_session, actor=other_admin, action="audit.verify", outcome="failure", details=broken)
    db_session.commit()
    page = html.unescape(auth.client.get("/admin/journal-audit").get_data(as_text=True))
    assert other_admin.login not in page and "Ruptures trouvées" not in page
    assert "par flask hub audit verify :" in page, "the CLI's, still the last this administrator may see"
    colleague = factories.user(db_session, cpts, Role.ADMIN)
    audit.record(db_session, actor=colleague, action="audit.verify", details=details)
    db_session.commit()
    assert f"par {colleague.login} :" in html.unescape(auth.client.get("/admin/journal-audit").get_data(as_text=True))


def test_a_row_rewritten_with_the_owners_rights_shows_as_a_break_named_in_french(
    auth, admin, db_session, cpts, checkpoints
):
    event_id, seq = rewrite_a_chained_row(db_session, cpts)
    auth.login(admin)
    auth.post("/admin/journal-audit/verifier")
    page = html.unescape(auth.client.get("/admin/journal-audit").get_data(as_text=True))
    assert "chaîne altérée, 1 rupture" in page
    assert "Ligne réécrite" in page
    assert f"<td>{seq}</td><td>Ligne réécrite</td><td>l'événement {event_id} ou le maillon a été modifié" in page
    row = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.verify")).one()
    assert row.outcome == "failure"


def test_a_deleted_tail_shows_as_truncated(auth, admin, db_session, cpts, checkpoints):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    for number in range(3):
        audit.record(db_session, actor=user, action="patient.read", target=("patients", number))
    db_session.commit()
    # The worker chains what waits and checkpoints the head.
    audit.run_sequencer(lambda: factories.Borrowed(db_session), key=audit.DEVELOPMENT_KEY, checkpoint_file=checkpoints)
    tail = db_session.scalars(select(AuditLink).order_by(AuditLink.seq.desc()).limit(3)).all()
    if db_session.get_bind().dialect.name == "postgresql":
        db_session.execute(text("ALTER TABLE audit_chain DISABLE TRIGGER audit_chain_append_only"))
        db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    for link in tail:
        db_session.execute(text("DELETE FROM audit_chain WHERE seq = :seq"), {"seq": link.seq})
        db_session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": link.event_id})
    db_session.commit()
    auth.login(admin)
    auth.post("/admin/journal-audit/verifier")
    page = html.unescape(auth.client.get("/admin/journal-audit").get_data(as_text=True))
    assert "Fin de la chaîne supprimée" in page
    assert f"un point de contrôle atteste le maillon {tail[0].seq}" in page


def test_without_the_csrf_token_nothing_is_verified(auth, admin, db_session, checkpoints):
    auth.login(admin)
    response = auth.client.post("/admin/journal-audit/verifier")
    assert response.status_code in (400, 403)
    assert db_session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.verify")).all() == []


def test_a_coordinator_is_refused(auth, db_session, cpts, checkpoints):
    auth.login(factories.user(db_session, cpts, Role.COORDINATOR))
    assert auth.client.get("/admin/journal-audit").status_code == 403
    assert auth.post("/admin/journal-audit/verifier").status_code == 403
    assert db_session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.verify")).all() == []


def test_a_checkpoint_file_missing_where_links_exist_is_said(auth, admin, app, db_session, monkeypatch, tmp_path):
    """The web node reads the workers' file: missing here while rows are chained, it is not shared with them."""
    audit.record(db_session, actor=admin, action="patient.read", target=("patients", 1))
    db_session.commit()
    audit.run_sequencer(lambda: factories.Borrowed(db_session), key=audit.DEVELOPMENT_KEY, checkpoint_file=None)
    path = tmp_path / "elsewhere" / "audit.jsonl"
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "AUDIT_CHECKPOINT_FILE": str(path)}))
    auth.login(admin)
    body = html.unescape(auth.client.get("/admin/journal-audit").get_data(as_text=True))
    assert "n'existe pas sur ce serveur alors que des lignes sont enchaînées" in body


def test_a_checkpoint_file_that_cannot_be_read_stops_the_verification(
    auth, admin, app, db_session, monkeypatch, tmp_path
):
    path = tmp_path / "a-folder"
    path.mkdir()
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "AUDIT_CHECKPOINT_FILE": str(path)}))
    auth.login(admin)
    response = auth.post("/admin/journal-audit/verifier")
    assert response.status_code == 409
    assert "ne peut pas être lu" in html.unescape(response.get_data(as_text=True))
    assert db_session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.verify")).all() == []


def test_a_slow_last_verification_is_said_before_the_button(auth, admin, db_session, checkpoints):
    details = {"breaks": 0, "length": 900_000, "linked": 0, "seconds": 34.2, "named": []}
    audit.record(db_session, actor="flask hub audit verify", action="audit.verify", details=details)
    db_session.commit()
    auth.login(admin)
    body = html.unescape(auth.client.get("/admin/journal-audit").get_data(as_text=True))
    assert "par flask hub audit verify :" in body
    assert 'id="audit-slow">La dernière vérification a pris\n34 s' in body
