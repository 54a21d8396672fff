"""The patient read's light path (issue 17, P1): a view marked `light_read` resolves its Bearer token to an
`accounts.Caller` from one Core SELECT and runs its statements without a transaction, its audit rows written at the
end in one INSERT. What must hold all the same: a revoked, expired or deactivated token stops at the next request
whatever process revoked it, and a read has its audit row if and only if it was answered.

These tests commit for real (`committed`): the rolled-back outer transaction of `db_session` would hide the very
transactions they are about. The other process is another engine on the same database."""

import datetime as dt

import pytest
from flask_login import current_user
from sqlalchemy import event, func, select, update

from hub import audit
from hub.auth import policies
from hub.auth.guards import patient_record_for
from hub.db import driver_rows, make_engine, make_session_factory, read_rows, utcnow
from hub.http.access import access, light_read
from hub.http.request import db
from hub.models import ApiToken, AuditEvent, Profession, User
from hub.schemas.patient import PatientOut, patient_record_out
from hub.services import accounts
from tests import factories


@pytest.fixture
def reading(app, committed):
    """A GP with a token, their patient (with a consent) and a stranger's patient, committed; the app's client."""
    factory, created = committed
    with factory() as session:
        cpts = factories.cpts(session)
        created.append(cpts.id)
        gp = factories.clinician(session, cpts, Profession.GENERAL_PRACTITIONER)
        own = factories.patient(session, cpts, attending_gp_id=gp.professional_id)
        factories.consent(session, own, recorded_by=gp)
        other = factories.patient(session, cpts)
        token, raw = accounts.create_api_token(session, gp, name="lecture")
        session.commit()
        ids = {"own": own.id, "other": other.id, "token": token.id, "user": gp.id}
    return app.test_client(), {"Authorization": f"Bearer {raw}"}, ids


@pytest.fixture
def other_process(database_url):
    """Another process's view of the database: an engine and a pool of its own."""
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def _last_audit_id(factory) -> int:
    with factory() as session:
        return session.scalar(select(func.max(AuditEvent.id))) or 0


def _reads(factory, patient_id: int, since: int) -> list[tuple[str, str]]:
    """The audit rows of the patient written after the row `since` (the log is append-only: earlier tests' stay)."""
    with factory() as session:
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.outcome)
            .where(
                AuditEvent.id > since,
                AuditEvent.target_type == "patients",
                AuditEvent.target_id == str(patient_id),
            )
            .order_by(AuditEvent.id)
        )
        return [tuple(row) for row in rows]


@pytest.mark.parametrize(
    "stop",
    [
        lambda ids: update(ApiToken).where(ApiToken.id == ids["token"]).values(revoked_at=utcnow()),
        lambda ids: update(ApiToken).where(ApiToken.id == ids["token"]).values(expires_at=utcnow()),
        lambda ids: update(User).where(User.id == ids["user"]).values(is_active=False),
    ],
    ids=["revoked", "expired", "deactivated"],
)
def test_a_token_stopped_by_another_process_is_refused_at_the_next_request(reading, other_process, stop):
    client, headers, ids = reading
    assert client.get(f"/api/v1/patients/{ids['own']}", headers=headers).status_code == 200
    with other_process() as session:
        session.execute(stop(ids))
        session.commit()
    response = client.get(f"/api/v1/patients/{ids['own']}", headers=headers)
    assert response.status_code == 401 and response.mimetype == "application/problem+json"


def test_the_read_runs_outside_a_transaction_in_two_statements(app, reading):
    """Token and patient in one SELECT (the view's preload), then the audit INSERT; no BEGIN or COMMIT on
    PostgreSQL (autocommit), no BEGIN IMMEDIATE holding SQLite's write lock from the first SELECT on (each statement
    outside a transaction). Three statements on main: the token's SELECT, the patient's, the INSERT."""
    client, headers, ids = reading
    client.get(f"/api/v1/patients/{ids['own']}", headers=headers)  # the token's first use stamps last_used_at
    engine = app.extensions["hub.engine"]
    seen: list[tuple[str, bool]] = []

    def record(conn, _cursor, statement, *_args):
        dbapi = conn.connection.dbapi_connection
        outside = dbapi.autocommit if engine.dialect.name == "postgresql" else not dbapi.in_transaction
        seen.append((statement.split()[0] + " " + statement.split("FROM")[-1].split()[0], outside))

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get(f"/api/v1/patients/{ids['own']}", headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200
    assert [statement for statement, _ in seen] == ["SELECT api_tokens", "INSERT INSERT"], seen
    assert all(outside for _, outside in seen), seen


def test_the_read_ends_without_the_session_s_commit_on_postgresql(app, reading, committed):
    """On PostgreSQL the read's statements commit as they run (AUTOCOMMIT), its audit row by its own INSERT: the
    request ends without the session's commit (`is_autocommitting`), and the row is there all the same. A refused
    read's session was rolled back by its error page, so its denial's row goes through the commit as before."""
    if app.extensions["hub.engine"].dialect.name != "postgresql":
        pytest.skip("SQLite commits the reads' rows together (hub.audit.GroupCommit)")
    client, headers, ids = reading
    factory, _created = committed
    engine = app.extensions["hub.engine"]
    commits: list[str] = []

    def on_commit(_conn):
        commits.append(client_path)

    event.listen(engine, "commit", on_commit)
    try:
        since = _last_audit_id(factory)
        client_path = "own"
        assert client.get(f"/api/v1/patients/{ids['own']}", headers=headers).status_code == 200
        client_path = "other"
        assert client.get(f"/api/v1/patients/{ids['other']}", headers=headers).status_code == 404
    finally:
        event.remove(engine, "commit", on_commit)
    assert commits == ["other"], commits
    assert _reads(factory, ids["own"], since) == [("patient.read", "success")]
    assert _reads(factory, ids["other"], since) == [("patient.read", "denied")]


def test_the_read_s_statements_bypass_sqlalchemy_s_execution(app, reading):
    """The token with the patient, and the audit INSERT, go to the driver with their SQL compiled once
    (hub.db.driver_rows, driver_execute): the engine's cursor events see the two statements, but SQLAlchemy's
    execution (its compiled-cache lookup, its result metadata), whose `before_execute` fires for every statement it
    runs, sees none."""
    client, headers, ids = reading
    client.get(f"/api/v1/patients/{ids['own']}", headers=headers)  # the token's first use stamps last_used_at
    engine = app.extensions["hub.engine"]
    executed: list[object] = []
    cursors: list[str] = []

    def through_sqlalchemy(_conn, clauseelement, *_args):
        executed.append(clauseelement)

    def on_cursor(_conn, _cursor, statement, *_args):
        cursors.append(statement.split()[0])

    event.listen(engine, "before_execute", through_sqlalchemy)
    event.listen(engine, "before_cursor_execute", on_cursor)
    try:
        response = client.get(f"/api/v1/patients/{ids['own']}", headers=headers)
    finally:
        event.remove(engine, "before_execute", through_sqlalchemy)
        event.remove(engine, "before_cursor_execute", on_cursor)
    assert response.status_code == 200
    assert cursors == ["SELECT", "INSERT"] and executed == [], (cursors, executed)


def test_driver_rows_are_sqlalchemy_s(db_session, cpts, gp, coordinator):
    """The driver's rows hold the values SQLAlchemy's would (aware UTC datetimes, dates, enums, booleans, the IN
    lists of constants of the care relation), for the caller of a token and a patient's record with its consents;
    the audit row written by the driver reads back as queued."""
    token, raw = accounts.create_api_token(db_session, gp, name="lecture")
    patient = factories.patient(db_session, cpts, qualified=True, attending_gp_id=gp.professional_id)
    factories.consent(db_session, patient, recorded_by=gp, withdrawn_at=utcnow() - dt.timedelta(hours=1))
    db_session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=utcnow()))
    db_session.flush()
    statements = [
        (accounts.CALLER_OF_TOKEN, {"token_hash": accounts._digest(raw)}),
        (policies._RECORD_IN_CPTS, {"patient_id": patient.id, "cpts_id": cpts.id}),
        (
            policies._RECORD_IN_CARE,
            {"patient_id": patient.id, "cpts_id": cpts.id, "professional_id": gp.professional_id},
        ),
        (policies._RECORD_IN_CARE, {"patient_id": patient.id, "cpts_id": cpts.id, "professional_id": -1}),
    ]
    for statement, parameters in statements:
        expected = [tuple(row) for row in read_rows(db_session, statement, parameters)]
        assert [tuple(row) for row in driver_rows(db_session, statement, parameters)] == expected
        assert expected
    row = audit.record(db_session, actor=coordinator, action="patient.read", target=patient)
    audit.write_pending(db_session)
    written = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert {key: getattr(written, key) for key in row} == row


def test_a_read_is_audited_once_when_answered_and_a_refusal_as_denied(reading, committed):
    client, headers, ids = reading
    factory, _created = committed
    since = _last_audit_id(factory)
    assert client.get(f"/api/v1/patients/{ids['own']}", headers=headers).status_code == 200
    assert _reads(factory, ids["own"], since) == [("patient.read", "success")]
    assert client.get(f"/api/v1/patients/{ids['other']}", headers=headers).status_code == 404
    assert _reads(factory, ids["other"], since) == [("patient.read", "denied")]


def test_a_read_that_fails_after_its_statements_leaves_no_audit_row(app, reading, committed):
    """The patient was read but not answered (an error after the SELECT): no audit row, as a rolled-back read."""
    client, headers, ids = reading
    factory, _created = committed
    original = app.view_functions["api.get_patient"]

    def failing(patient_id: int):
        assert isinstance(current_user._get_current_object(), accounts.Caller)
        patient_record_for(db(), current_user, patient_id)
        raise RuntimeError("after the read")

    app.view_functions["api.get_patient"] = access(original.access_rule)(light_read(failing))
    since = _last_audit_id(factory)
    try:
        assert client.get(f"/api/v1/patients/{ids['own']}", headers=headers).status_code == 500
    finally:
        app.view_functions["api.get_patient"] = original
    assert _reads(factory, ids["own"], since) == []


def test_the_light_serialisation_is_the_schema_s(db_session, cpts, gp):
    """`patient_record_out` gives what `PatientOut` gives, for a qualified identity with its INS and two consents,
    one withdrawn, and for a provisional one without any."""
    qualified = factories.patient(db_session, cpts, qualified=True, attending_gp_id=gp.professional_id)
    factories.consent(db_session, qualified, recorded_by=gp, collected_by_professional_id=gp.professional_id)
    factories.consent(db_session, qualified, recorded_by=gp, withdrawn_at=utcnow() - dt.timedelta(hours=1))
    plain = factories.patient(
        db_session, cpts, attending_gp_id=gp.professional_id, used_last_name="DURAND", phone="0612345678"
    )
    db_session.commit()
    for patient in (qualified, plain):
        db_session.refresh(patient)
        rows = patient_record_for(db_session, gp, patient.id)
        assert patient_record_out(rows) == PatientOut().dump(patient)
    assert patient_record_out(patient_record_for(db_session, gp, qualified.id))["ins"] is not None
