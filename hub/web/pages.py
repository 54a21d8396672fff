"""Helpers shared by the pages: list filters from the query string, page size, a form submitted to a service."""

from flask import current_app, flash, redirect, request
from flask_login import current_user

from hub import audit
from hub.auth.policies import appointment_for
from hub.errors import HubError, ValidationFailed
from hub.http.forms import load_form
from hub.http.request import db, keep_changes_on_error
from hub.schemas.base import load


def load_query(schema) -> tuple[dict, dict, dict]:
    """(filters, raw values to re-display, errors by field) from the query string; bad filters are dropped."""
    raw = request.args.to_dict()
    try:
        return load(schema, raw), raw, {}
    except ValidationFailed as exc:
        return {"page": 1}, raw, exc.errors


def page_size() -> int:
    return current_app.config["HUB"]["API_PAGE_SIZE"]


def submit(schema, perform, *, partial: bool = False) -> tuple[object, dict, dict]:
    """Load the form and hand it to `perform` (one service call): (its result, raw values, errors by field).

    The form's errors and the service's ValidationFailed come back the same way, for the page to show
    next to the fields; any other refusal propagates to the error pages."""
    data, values, errors = load_form(schema, partial=partial)
    if errors:
        return None, values, errors
    try:
        return perform(data), values, {}
    except ValidationFailed as exc:
        return None, values, exc.errors


def read_despite_error(action: str, *, target=None, details=None) -> None:
    """A refused form is shown again with the page's data: the refused change is undone first, then that
    read is audited and kept although the response is an error."""
    db().rollback()
    audit.record(db(), actor=current_user, action=action, target=target, details=details)
    keep_changes_on_error()


def appointment_action(appointment_id: int, verb: str, schema, perform, *, show_again, done_url: str):
    """One action on an appointment from a page. Done: a French confirmation and Post/Redirect/Get.
    Refused: `show_again(appointment, verb, values, error)` renders the page with the form's errors, after
    `read_despite_error` or the same steps (nothing of the change stays; the page's read is audited)."""
    appointment = appointment_for(db(), current_user, appointment_id, verb)
    data, values, errors = load_form(schema)
    try:
        if errors:
            raise ValidationFailed(errors)
        message = perform(appointment, data)
    except HubError as exc:
        if exc.audit_action:
            raise
        return show_again(appointment, verb, values, exc)
    flash(message, "success")
    return redirect(done_url)
