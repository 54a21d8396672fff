"""The request's hot path in a few statements (issue 17, P1): the Bearer token and the session cookie each resolve
their user in one SELECT, the patient read is one SELECT with the care-relation check, and none of them lazy-loads.

Statements are counted on the real database (SQLite or PostgreSQL) with a cursor event. The audit write is left out
of the counts: it is another change's subject (its statements name `audit_events` or take the chain's lock)."""

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from hub.db import utcnow
from hub.models import AuditEvent, Role
from hub.schemas.patient import PatientOut
from hub.services import accounts
from tests import factories
from tests.queries import forbid_lazy_loads, statements_on


@pytest.fixture
def record(db_session, cpts, gp, nurse):
    """A patient of the GP, in the nurse's care team, with a consent (the read shows consents)."""
    row = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    factories.in_care_team(db_session, row, nurse.professional)
    factories.consent(db_session, row, recorded_by=gp)
    db_session.commit()
    return row


def _read(api, engine, patient_id):
    api.get(f"/api/v1/patients/{patient_id}")  # the token's first use stamps last_used_at: not the steady state
    with forbid_lazy_loads(), statements_on(engine) as seen:
        response = api.get(f"/api/v1/patients/{patient_id}")
    return response, seen


def _reads_of_patients(seen):
    return [statement for statement in seen if "FROM patients" in statement or "care_team_members" in statement]


@pytest.mark.parametrize("who", ["gp", "nurse", "coordinator"])
def test_patient_read_is_one_select_for_the_token_and_the_patient(request, api_as, engine, record, who):
    """The attending GP (relation on the row), a care-team nurse (relation through the union) and a coordinator
    (whole CPTS): the token with its user's ids and roles, the patient with consents and the care check, in one
    SELECT (the view's preload, hub.http.access.light_read); two on main, the token's then the patient's."""
    api = api_as(request.getfixturevalue(who))
    response, seen = _read(api, engine, record.id)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["id"] == record.id and len(body["consents"]) == 1
    assert len(seen) == 1, seen
    (read,) = seen
    assert "FROM api_tokens" in read and "user_roles" in read and "LEFT OUTER JOIN patients" in read
    assert "consents" in read


def test_a_caller_of_several_roles_reads_each_consent_once_in_order(api_as, engine, db_session, cpts, gp):
    """The preload's rows are the caller's roles × the patient's consents: the record shows each consent once, in
    the order of `_RECORD_IN_CPTS`, whatever the number of roles."""
    coordinator = factories.user(db_session, cpts, Role.COORDINATOR, Role.PROFESSIONAL, Role.ADMIN)
    patient = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id)
    now = utcnow()
    for days in (1, 5, 3):
        factories.consent(db_session, patient, recorded_by=gp, collected_at=now - dt.timedelta(days=days))
    db_session.commit()
    response, seen = _read(api_as(coordinator), engine, patient.id)
    assert response.status_code == 200 and len(seen) == 1, seen
    db_session.expire_all()
    expected = PatientOut().dump(patient)
    assert len(expected["consents"]) == 3 and response.get_json() == expected


def test_stranger_gets_the_audited_404_from_the_same_single_select(api_as, engine, db_session, cpts, record):
    stranger = factories.user(db_session, cpts)
    db_session.commit()
    api = api_as(stranger)
    api.get(f"/api/v1/patients/{record.id}")
    # The refusal's audit line reloads the actor after the rollback: the denial path, not the read's, so only the
    # patient's statements are counted here.
    with statements_on(engine) as seen:
        response = api.get(f"/api/v1/patients/{record.id}")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert len(_reads_of_patients(seen)) == 1, seen
    assert "FROM api_tokens" in seen[0]
    last = db_session.query(AuditEvent).order_by(AuditEvent.id.desc()).first()
    assert (last.action, last.outcome, last.target_id) == ("patient.read", "denied", str(record.id))


def test_session_cookie_resolves_its_user_in_one_select(app, db_session, engine, gp):
    token = accounts.start_session(db_session, gp)
    db_session.commit()
    with Session(bind=db_session.connection()) as fresh, forbid_lazy_loads(), statements_on(engine) as seen:
        user = accounts.resume_session(fresh, token, _limits(app))
        assert user is not None and user.id == gp.id
        # What the request then asks of its user comes from that one row set.
        assert user.professional.id == gp.professional_id and user.roles == gp.roles
    assert len(seen) == 1, seen
    assert "FROM user_sessions" in seen[0] and "user_roles" in seen[0]


def _limits(app):
    from hub.app import session_limits

    return session_limits(app)
