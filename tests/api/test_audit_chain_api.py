"""`/api/v1/audit/chain` for the CPTS's administrator: the chain's state, and a verification run now that walks
without chaining and names each break; problem+json for a body sent to the verb, a caller without the right or a
verification already running; the verification itself audited, and seen by its own CPTS's administrators only."""

import datetime as dt
from types import MappingProxyType

import pytest
from sqlalchemy import select

from hub import audit
from hub.models import AuditEvent, Role
from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.web.test_audit_log_pages import (
    a_row_the_sequencer_left_waiting,
    another_verification_running,
    rewrite_a_chained_row,
)


@pytest.fixture
def checkpoints(app, tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "AUDIT_CHECKPOINT_FILE": str(path)}))
    return path


def verifications(db_session) -> list[AuditEvent]:
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.verify")))


def test_the_state_then_an_intact_verification_then_the_state_again(api_as, admin, db_session, checkpoints):
    client = api_as(admin)
    before = client.get("/api/v1/audit/chain")
    assert before.status_code == 200
    state = before.get_json()
    assert state["checkpoint_file"] == str(checkpoints)
    assert state["checkpoint_warning"].startswith("Le fichier des points de contrôle n'existe pas")
    assert state["last_checkpoint"] is None and state["pending"] >= 1, "at least the token's creation waits"

    response = client.post("/api/v1/audit/chain/verify")
    assert response.status_code == 200
    result = response.get_json()
    assert result["intact"] is True and result["breaks"] == []
    assert result["linked"] == 0 and result["pending"] >= 1, "a web node leaves the rows waiting to the worker"
    assert result["length"] == state["chained"]

    after = client.get("/api/v1/audit/chain").get_json()
    assert after["chained"] == state["chained"] and after["last_checkpoint"] is None, "nothing chained nor attested"
    assert after["checkpoint_warning"].startswith("Le fichier des points de contrôle n'existe pas")
    last = after["last_verification"]
    assert (last["by"], last["intact"], last["breaks"], last["length"]) == (admin.login, True, 0, result["length"])
    assert [row.actor_user_id for row in verifications(db_session)] == [admin.id]


def test_a_row_rewritten_with_the_owners_rights_is_a_named_break(api_as, admin, db_session, cpts, checkpoints):
    event_id, seq = rewrite_a_chained_row(db_session, cpts)
    response = api_as(admin).post("/api/v1/audit/chain/verify")
    assert response.status_code == 200
    result = response.get_json()
    assert result["intact"] is False
    assert result["breaks"] == [
        {
            "seq": seq,
            "kind": "rewritten",
            "kind_label": "Ligne réécrite",
            "reason": f"l'événement {event_id} ou le maillon a été modifié (mac faux)",
        }
    ]
    last = api_as(admin).get("/api/v1/audit/chain").get_json()["last_verification"]
    assert (last["intact"], last["breaks"]) == (False, 1)
    assert last["named_breaks"][0]["kind"] == "rewritten"


def test_rows_the_sequencer_left_waiting_too_long_are_a_stall_not_intact(api_as, admin, db_session, cpts, checkpoints):
    """Review 2, #2: no break, but not intact either, with when the oldest row has been waiting."""
    since = a_row_the_sequencer_left_waiting(db_session, cpts)
    result = api_as(admin).post("/api/v1/audit/chain/verify").get_json()
    assert (result["intact"], result["stalled"], result["breaks"]) == (False, True, [])
    assert dt.datetime.fromisoformat(result["oldest_pending_at"]) == since
    last = api_as(admin).get("/api/v1/audit/chain").get_json()["last_verification"]
    assert (last["intact"], last["breaks"]) == (False, 0)
    assert dt.datetime.fromisoformat(last["stalled_since"]) == since
    assert verifications(db_session)[0].outcome == "failure"


def test_a_body_sent_to_the_verb_is_refused_and_nothing_verified(api_as, admin, db_session, checkpoints):
    assert_problem(api_as(admin).post("/api/v1/audit/chain/verify", json={"all": True}), 422)
    assert verifications(db_session) == []


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.PROFESSIONAL])
def test_other_roles_are_refused(api_as, db_session, cpts, role, checkpoints):
    client = api_as(factories.user(db_session, cpts, role))
    assert_problem(client.get("/api/v1/audit/chain"), 403)
    assert_problem(client.post("/api/v1/audit/chain/verify"), 403)
    assert verifications(db_session) == []


def test_a_second_verification_while_one_runs_is_a_409(app, engine, api_as, admin, db_session, checkpoints):
    client = api_as(admin)
    with another_verification_running(app, engine):
        body = assert_problem(client.post("/api/v1/audit/chain/verify"), 409)
    assert body["detail"].startswith("Une vérification de la chaîne est déjà en cours")
    assert verifications(db_session) == []
    assert client.post("/api/v1/audit/chain/verify").status_code == 200


def test_another_cptss_verification_is_not_shown(api_as, admin, db_session, checkpoints):
    other_admin = factories.user(db_session, factories.cpts(db_session), Role.ADMIN)
    api_as(other_admin).post("/api/v1/audit/chain/verify")
    assert api_as(other_admin).get("/api/v1/audit/chain").get_json()["last_verification"]["by"] == other_admin.login
    assert api_as(admin).get("/api/v1/audit/chain").get_json()["last_verification"] is None
    details = {"breaks": 0, "length": 1, "linked": 0, "seconds": 0.1, "named": []}
    audit.record(db_session, actor="flask hub audit verify", action="audit.verify", details=details)
    db_session.commit()
    assert api_as(admin).get("/api/v1/audit/chain").get_json()["last_verification"]["by"] == "flask hub audit verify"
