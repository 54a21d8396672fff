"""No pre-ping on every checkout (issue 17): a pooled connection killed by the server does not fail the next request.

PostgreSQL only: the test kills the application's own connections with pg_terminate_backend, as a server restart
or an idle-connection timeout would, then sends the next request through the same pool."""

import time

import pytest
from flask_login import current_user
from sqlalchemy import event, func, literal, select, text

from hub import audit, create_app
from hub.http.access import access, light_read
from hub.http.request import db
from hub.models import AuditEvent, Profession
from hub.services import accounts
from tests import conftest, factories

pytestmark = pytest.mark.skipif(
    not (conftest.TEST_DATABASE_URL or "").startswith("postgresql"), reason="kills PostgreSQL backends"
)


@pytest.fixture
def own_app(database_url):
    """An application with a pool of its own, so that only its connections are killed."""
    application = create_app(conftest.test_config(database_url))
    backends: set[int] = set()

    @event.listens_for(application.extensions["hub.engine"], "connect")
    def _remember(dbapi_connection, _record):
        backends.add(dbapi_connection.info.backend_pid)

    yield application, backends
    application.extensions["hub.engine"].dispose()


@pytest.fixture
def gp_reading(committed):
    """A GP with a token and their patient, committed: (CPTS id, patient id, the token's Authorization header)."""
    factory, created = committed
    with factory() as session:
        cpts = factories.cpts(session)
        created.append(cpts.id)
        gp = factories.clinician(session, cpts, Profession.GENERAL_PRACTITIONER)
        patient = factories.patient(session, cpts, attending_gp_id=gp.professional_id)
        _row, raw = accounts.create_api_token(session, gp, name="reconnect")
        session.commit()
        return cpts.id, patient.id, {"Authorization": f"Bearer {raw}"}


def _terminate(factory, pids: set[int]) -> None:
    with factory() as admin:
        admin.execute(
            text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid"), {"pids": list(pids)}
        )
        for _ in range(100):  # the backends end asynchronously
            # pg_stat_activity is read once per transaction: each look in a transaction of its own.
            admin.rollback()
            alive = admin.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(CAST(:pids AS int[]))"),
                {"pids": list(pids)},
            )
            if not alive:
                return
            time.sleep(0.02)
    raise AssertionError("the backends did not end")


def test_a_killed_pooled_connection_does_not_fail_the_next_request(own_app, committed, gp_reading):
    application, backends = own_app
    factory, _created = committed
    _cpts_id, patient_id, headers = gp_reading
    client = application.test_client()

    assert client.get(f"/api/v1/patients/{patient_id}", headers=headers).status_code == 200
    killed = set(backends)
    assert killed, "the request went through the application's pool"
    _terminate(factory, killed)

    response = client.get(f"/api/v1/patients/{patient_id}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["id"] == patient_id
    assert backends - killed, "the second request ran on a new connection"


def test_a_light_read_killed_between_its_statements_keeps_its_audit_row(own_app, committed, gp_reading):
    """A `light_read` view runs without a transaction, so every statement is a first one and is retried on a fresh
    connection; what the view queued before (its audit row) is still written at the end."""
    application, _backends = own_app
    factory, _created = committed
    cpts_id, _patient_id, headers = gp_reading
    marker = f"reconnect.{cpts_id}"

    def view(patient_id: int):
        audit.record(db(), actor=current_user, action=marker)
        _terminate(factory, {db().connection().connection.dbapi_connection.info.backend_pid})
        return {"answer": db().scalar(select(literal(patient_id)))}

    original = application.view_functions["api.get_patient"]
    application.view_functions["api.get_patient"] = access(original.access_rule)(light_read(view))
    response = application.test_client().get("/api/v1/patients/7", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"answer": 7}
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == marker)) == 1


def test_a_restart_invalidates_the_whole_pool_on_the_driver_path(own_app, committed, gp_reading):
    """The light read's first statement (its token) is run by the driver (hub.db.driver_execute). After a restart
    every pooled connection is dead: the disconnect must make the pool replace all of them, as SQLAlchemy's own
    execution does, or the one retry draws the next dead connection and the read answers 500."""
    application, backends = own_app
    factory, _created = committed
    _cpts_id, patient_id, headers = gp_reading
    engine = application.extensions["hub.engine"]
    pooled = [engine.connect() for _ in range(3)]
    for connection in pooled:
        connection.exec_driver_sql("SELECT 1")
    for connection in pooled:
        connection.close()
    killed = set(backends)
    assert len(killed) == 3 and engine.pool.checkedin() == 3
    _terminate(factory, killed)
    with factory() as session:
        audited_before = session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))

    response = application.test_client().get(f"/api/v1/patients/{patient_id}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    with factory() as session:
        reads = session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.target_type == "patients",
                AuditEvent.target_id == str(patient_id),
                AuditEvent.id > audited_before,
            )
        ).all()
    assert reads == ["patient.read"]
