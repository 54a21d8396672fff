"""The request's unit of work (hub.http.request): a view that returns is committed, whatever its status; a
view that raises is discarded, except the trace of an audited refusal; a refused form keeps only its read."""

import pytest
from sqlalchemy import select

from hub import audit
from hub.errors import Forbidden, RuleViolation, ValidationFailed
from hub.http.access import PUBLIC, access
from hub.http.forms import attempt
from hub.http.request import db
from hub.models import AuditEvent, Role
from tests import factories


@pytest.fixture
def swap_view(app):
    """Serve `view` at /healthz (a public GET) for the test."""
    original = app.view_functions["home.health"]

    def swap(view):
        app.view_functions["home.health"] = access(PUBLIC)(view)

    yield swap
    app.view_functions["home.health"] = original


def _write(action: str) -> None:
    audit.record(db(), actor=None, action=action)


def _actions(db_session) -> list[tuple[str, str]]:
    db_session.expire_all()
    rows = db_session.scalars(select(AuditEvent).where(AuditEvent.action.like("uow.%")).order_by(AuditEvent.id))
    return [(row.action, row.outcome) for row in rows]


def test_a_view_that_returns_is_committed_whatever_its_status(client, db_session, swap_view):
    def view():
        _write("uow.refusal_page")
        return "refusé", 401

    swap_view(view)
    assert client.get("/healthz").status_code == 401
    assert _actions(db_session) == [("uow.refusal_page", "success")]


def test_a_view_that_raises_is_discarded(client, db_session, swap_view):
    def view():
        _write("uow.half_done")
        raise RuleViolation("Action impossible.")

    swap_view(view)
    assert client.get("/healthz").status_code == 422
    assert _actions(db_session) == []


def test_an_unexpected_error_is_discarded(client, db_session, swap_view):
    def view():
        _write("uow.half_done")
        raise RuntimeError("boom")

    swap_view(view)
    assert client.get("/healthz").status_code == 500
    assert _actions(db_session) == []


def test_an_audited_refusal_keeps_only_its_trace(client, db_session, swap_view):
    def view():
        _write("uow.half_done")
        raise Forbidden("Non.", audit_action="uow.refused")

    swap_view(view)
    assert client.get("/healthz").status_code == 403
    assert _actions(db_session) == [("uow.refused", "denied")]


def test_a_refused_form_keeps_only_the_read_of_the_page_shown_again(auth, client, db_session, cpts, swap_view):
    auth.login(factories.user(db_session, cpts, Role.COORDINATOR))

    def perform():
        _write("uow.half_done")
        raise ValidationFailed({"name": "Obligatoire."})

    def view():
        _, refused = attempt(perform, read="uow.page_read")
        return refused.errors["name"], refused.status

    swap_view(view)
    response = client.get("/healthz")
    assert (response.status_code, response.get_data(as_text=True)) == (422, "Obligatoire.")
    assert _actions(db_session) == [("uow.page_read", "success")]


def test_a_refusal_that_audits_itself_is_not_a_forms(auth, client, db_session, cpts, swap_view):
    auth.login(factories.user(db_session, cpts, Role.COORDINATOR))

    def perform():
        raise Forbidden("Non.", audit_action="uow.refused")

    def view():
        attempt(perform, read="uow.page_read")
        return "shown again"

    swap_view(view)
    assert client.get("/healthz").status_code == 403
    assert _actions(db_session) == [("uow.refused", "denied")]
