"""« Journal d'audit » for the CPTS's administrator: the chain's state, where checkpoints go, and « Vérifier la
chaîne maintenant » — which chains what waits, walks the chain, names each break in French and is itself audited."""

import html
from types import MappingProxyType

import pytest
from sqlalchemy import select, text

from hub import audit
from hub.models import AuditEvent, AuditLink, Role
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
    audit.run_sequencer(lambda: _Borrowed(db_session), key=audit.DEVELOPMENT_KEY, checkpoint_file=None)
    event_id = db_session.scalar(select(AuditEvent.id).where(AuditEvent.actor_user_id == user.id))
    if db_session.get_bind().dialect.name == "postgresql":
        db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    db_session.execute(text("UPDATE audit_events SET target_id = '2' WHERE id = :id"), {"id": event_id})
    db_session.commit()
    seq = db_session.scalar(select(AuditLink.seq).where(AuditLink.event_id == event_id))
    return event_id, seq


class _Borrowed:
    """The test's session handed to run_sequencer as if from its sessionmaker, left open at the `with`'s end."""

    def __init__(self, session):
        self.session = session

    def __enter__(self):
        return self.session

    def __exit__(self, *exc):
        return False


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
    assert "Le fichier des points de contrôle n'existe pas encore" in body
    assert "Vérifier la chaîne maintenant" in body


def test_verifying_chains_what_waits_checkpoints_it_and_is_audited(auth, admin, db_session, checkpoints):
    auth.login(admin)
    response = auth.post("/admin/journal-audit/verifier")
    assert response.status_code == 302
    page = html.unescape(auth.client.get(response.headers["Location"]).get_data(as_text=True))
    assert "Chaîne intègre" in page
    assert f"par {admin.login}" in page and "chaîne intègre" in page
    assert checkpoints.exists(), "the page's verification checkpointed the head it chained"
    assert "n'existe pas encore" not in page and "Dernier point de contrôle" in page
    row = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.verify")).one()
    assert (row.actor_user_id, row.outcome) == (admin.id, "success")


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
    auth.login(admin)
    auth.post("/admin/journal-audit/verifier")  # chains what waits and checkpoints the head
    tail = db_session.scalars(select(AuditLink).order_by(AuditLink.seq.desc()).limit(3)).all()
    if db_session.get_bind().dialect.name == "postgresql":
        db_session.execute(text("ALTER TABLE audit_chain DISABLE TRIGGER audit_chain_append_only"))
        db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    for link in tail:
        db_session.execute(text("DELETE FROM audit_chain WHERE seq = :seq"), {"seq": link.seq})
        db_session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": link.event_id})
    db_session.commit()
    # The verification's own row, still waiting, is chained after the cut: the chain stays shorter than attested.
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


def test_a_checkpoint_file_that_cannot_be_created_is_said(auth, admin, app, monkeypatch, tmp_path):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    path = not_a_folder / "audit.jsonl"
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "AUDIT_CHECKPOINT_FILE": str(path)}))
    auth.login(admin)
    body = html.unescape(auth.client.get("/admin/journal-audit").get_data(as_text=True))
    assert "n'existe pas et ne peut pas être créé par ce serveur" in body
    response = auth.post("/admin/journal-audit/verifier")
    assert response.status_code == 409
    assert "ne peut pas être écrit" in html.unescape(response.get_data(as_text=True))


def test_a_slow_last_verification_is_said_before_the_button(auth, admin, db_session, checkpoints):
    details = {"breaks": 0, "length": 900_000, "linked": 0, "seconds": 34.2, "named": []}
    audit.record(db_session, actor="flask hub audit verify", action="audit.verify", details=details)
    db_session.commit()
    auth.login(admin)
    body = html.unescape(auth.client.get("/admin/journal-audit").get_data(as_text=True))
    assert "par flask hub audit verify :" in body
    assert 'id="audit-slow">La dernière vérification a pris\n34 s' in body
