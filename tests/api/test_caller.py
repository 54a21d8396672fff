"""Every API view acts as the token's `accounts.Caller` (issue 17, branch hk-caller): a writing call (P7's
confirmation) loads none of the account's ORM rows, yet its token's rules (revocation, expiry, the user's
deactivation) stop it at once and its audit row names the account. Only a view marked `needs_account` gets the
`User` entity."""

from contextlib import contextmanager

import pytest
from flask import g, request_finished
from sqlalchemy import func, select, update

from hub.db import utcnow
from hub.http.access import (
    is_light_page,
    needs_account_of,
    preload_of,
    request_view,
    runs_without_transaction,
)
from hub.models import ApiToken, AppointmentState, AuditEvent, User
from hub.services import accounts
from tests.queries import orm_executions

# The account's rows: what the old lookup (a joinedload of the token, its user, professional and roles) loaded.
ACCOUNT_ENTITIES = {"ApiToken", "User", "UserRole"}


@contextmanager
def callers(app):
    """Who each request of the block ran as (flask-login's user, as the view saw it)."""
    seen: list = []

    def keep(_sender, **_extra):
        seen.append(g._login_user)

    request_finished.connect(keep, app)
    try:
        yield seen
    finally:
        request_finished.disconnect(keep, app)


def test_a_writing_call_acts_as_the_caller_without_loading_the_account(
    clock, app, api_as, db_session, territory, visit
):
    """The IDEL's confirmation (P7): the policy, the workflow and the audit read the Caller; no ORM row of the
    account is loaded, and the audit row still names the IDEL's account."""
    api = api_as(territory.idel_user)
    assert api.get(f"/api/v1/appointments/{visit.id}").status_code == 200  # the token's first use stamps it
    audited_before = db_session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
    with callers(app) as seen, orm_executions() as (_executed, entities):
        response = api.post(f"/api/v1/appointments/{visit.id}/confirm")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == AppointmentState.CONFIRMED.value
    assert not ACCOUNT_ENTITIES & set(entities), entities
    assert [type(c) for c in seen] == [accounts.Caller]
    actors = db_session.execute(
        select(AuditEvent.action, AuditEvent.actor_user_id, AuditEvent.actor_label).where(
            AuditEvent.id > audited_before, AuditEvent.action == "appointment.confirm"
        )
    ).all()
    assert [tuple(a) for a in actors] == [("appointment.confirm", territory.idel_user.id, territory.idel_user.login)]


@pytest.mark.parametrize(
    "stop",
    [
        lambda user: update(ApiToken).where(ApiToken.user_id == user.id).values(revoked_at=utcnow()),
        lambda user: update(ApiToken).where(ApiToken.user_id == user.id).values(expires_at=utcnow()),
        lambda user: update(User).where(User.id == user.id).values(is_active=False),
    ],
    ids=["revoked", "expired", "deactivated"],
)
def test_a_stopped_token_is_refused_at_the_next_writing_call(clock, api_as, db_session, territory, visit, stop):
    api = api_as(territory.idel_user)
    assert api.get(f"/api/v1/appointments/{visit.id}").status_code == 200
    db_session.execute(stop(territory.idel_user))
    db_session.commit()
    response = api.post(f"/api/v1/appointments/{visit.id}/confirm")
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    db_session.refresh(visit)
    assert visit.state is not AppointmentState.CONFIRMED


def test_a_view_marked_needs_account_gets_the_user_entity(app, api_as, gp):
    """A GP's capacity reads `user.professional` (workflows.gp_matching.own_gp): its view gets the User."""
    api = api_as(gp)
    with callers(app) as seen:
        response = api.get("/api/v1/me/gp-capacity")
    assert response.status_code == 200, response.get_json()
    assert [type(c) for c in seen] == [User] and seen[0].id == gp.id


def test_only_api_views_are_marked_needs_account(app):
    """The mark means something only to the Bearer lookup (hub.app._bearer_user): on a page it would do nothing. The
    marked views are those whose services read the account's rows (the teleexpertise policies, a GP's or a
    clinician's own record)."""
    marked = {name for name, view in app.view_functions.items() if getattr(view, "needs_account", False)}
    teleexpertise = {"answer", "assign", "close", "create", "decline", "get", "list", "start"}
    assert marked == {
        *(f"api.{verb}_teleexpertise" for verb in teleexpertise),
        "api.get_teleexpertise_attachment",
        "api.get_gp_capacity",
        "api.put_gp_capacity",
        "api.get_service_area",
        "api.put_service_area",
        "fhir.read_service_request",
        "fhir.search_service_requests",
    }


def test_the_bearer_lookup_reads_the_marks_of_the_request_s_own_view(app):
    """hub.app._bearer_user looks the request's view up once and reads its marks from it: the preload only a light
    read declares, `needs_account`; a request that matched no route has no view and none of the marks."""
    with app.test_request_context("/api/v1/patients/1"):
        view = request_view()
        assert view is app.view_functions["api.get_patient"]
        assert (
            preload_of(view) is view.preload is not None
            and not needs_account_of(view)
            and runs_without_transaction("sqlite")
        )
    with app.test_request_context("/api/v1/me/gp-capacity"):
        view = request_view()
        assert needs_account_of(view) and preload_of(view) is None and not runs_without_transaction("sqlite")
    with app.test_request_context("/api/v1/nowhere"):
        assert request_view() is None and preload_of(None) is None and not needs_account_of(None)
        assert not runs_without_transaction("sqlite") and not is_light_page()
