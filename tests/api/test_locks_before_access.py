"""A state change reads its row under its lock with its access check (hub.auth.policies, issue 17): the cheap half
of the rule is in the locking SELECT, so that a row the caller may not act on is neither locked nor waited for. A
probe on another CPTS's id, or a mere reader's attempt at a report, answers at once while someone else holds the
row, as it does for an id that does not exist (no timing oracle).

PostgreSQL only (SQLite's writers take the database's one lock up front); the rows are committed for real
(`committed`), held by another engine's transaction, and the request waits for a lock at most a second."""

import contextlib
from types import SimpleNamespace

import pytest
from sqlalchemy import event, select

from hub.db import make_engine
from hub.models import Appointment, AppointmentState, Report, Role
from hub.services import accounts
from tests import factories


@pytest.fixture
def scene(app, engine, committed):
    """CPTS A's teleconsultation under way with its cardiologist's draft report; an IDEL of CPTS B, the accompanying
    IDEL and a GP of CPTS A, each with a token."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes no row lock: its writers take the database's one lock up front")
    factory, created = committed
    with factory() as session:
        here = factories.cpts(session)
        created.append(here.id)
        t = factories.territory(session, here)
        cardiologist = factories.user(session, here, Role.PROFESSIONAL, professional_row=t.cardiologist)
        colleague = factories.clinician(session, here)
        elsewhere = factories.cpts(session)
        created.append(elsewhere.id)
        stranger = factories.user(session, elsewhere, Role.PROFESSIONAL)
        done = factories.visit(session, t, state=AppointmentState.CHECKED_IN, now=factories.NOW)
        session.commit()
        users = {"cardiologist": cardiologist, "idel": t.idel_user, "colleague": colleague, "stranger": stranger}
        headers = {
            name: {"Authorization": f"Bearer {accounts.create_api_token(session, user, name='tests')[1]}"}
            for name, user in users.items()
        }
        session.commit()
        appointment_id = done.id
    client = app.test_client()
    draft = client.post("/api/v1/reports", json={"appointment_id": appointment_id}, headers=headers["cardiologist"])
    assert draft.status_code == 201, draft.get_json()
    return SimpleNamespace(client=client, headers=headers, appointment_id=appointment_id, report_id=draft.json["id"])


@contextlib.contextmanager
def held_elsewhere(database_url, model, row_id: int):
    """The row locked (FOR UPDATE) by another process's open transaction for the block's length."""
    other = make_engine(database_url)
    try:
        with other.connect() as holder, holder.begin():
            holder.execute(select(model.id).where(model.id == row_id).with_for_update())
            yield
    finally:
        other.dispose()


@contextlib.contextmanager
def impatient(engine):
    """The app's transactions wait for a row lock one second at most, then fail (instead of answering)."""

    def short_wait(connection):
        connection.exec_driver_sql("SET LOCAL lock_timeout = '1s'")

    event.listen(engine, "begin", short_wait)
    try:
        yield
    finally:
        event.remove(engine, "begin", short_wait)


def test_another_cptss_appointment_is_not_waited_for(scene, engine, database_url):
    with held_elsewhere(database_url, Appointment, scene.appointment_id), impatient(engine):
        refused = scene.client.post(
            f"/api/v1/appointments/{scene.appointment_id}/decline",
            json={"reason": "Indisponible"},
            headers=scene.headers["stranger"],
        )
        assert refused.status_code == 404, refused.get_json()


def test_a_reader_who_does_not_write_the_report_takes_no_lock(scene, engine, database_url):
    """The accompanying IDEL reads the session but does not write its report: refused as before, without waiting
    for the session's lock."""
    with held_elsewhere(database_url, Appointment, scene.appointment_id), impatient(engine):
        refused = scene.client.post(
            "/api/v1/reports", json={"appointment_id": scene.appointment_id}, headers=scene.headers["idel"]
        )
        assert refused.status_code == 422, refused.get_json()
        assert "réalisé l'acte" in refused.get_json()["detail"]


def test_only_the_author_waits_for_a_draft(scene, engine, database_url):
    with held_elsewhere(database_url, Report, scene.report_id), impatient(engine):
        for who in ("colleague", "stranger"):
            refused = scene.client.patch(
                f"/api/v1/reports/{scene.report_id}", json={"acts": "Rien."}, headers=scene.headers[who]
            )
            assert refused.status_code == 404, (who, refused.get_json())
