"""Reading a submitted form, showing it again when refused, safe redirects."""

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from flask import request
from flask_login import current_user

from hub import audit
from hub.errors import HubError, ValidationFailed
from hub.http.request import db, discard_changes
from hub.schemas.base import load

T = TypeVar("T")


def form_data() -> dict:
    """The submitted form as a dict; a repeated field (checkbox list) stays a list."""
    data = {}
    for key in request.form:
        values = request.form.getlist(key)
        data[key] = values if len(values) > 1 or key.endswith("_ids") else values[0]
    return data


def load_form(schema, *, partial: bool = False) -> tuple[dict, dict, dict]:
    """(loaded data, raw values to re-display, errors by field). With errors the data is empty: `attempt`
    given them as `form_errors` refuses the form without calling the code that would read it."""
    raw = form_data()
    try:
        return load(schema, raw, partial=partial), raw, {}
    except ValidationFailed as exc:
        return {}, raw, exc.errors


def attempt(
    perform: Callable[[], T],
    *,
    form_errors: dict | None = None,
    refusals: type[HubError] = HubError,
    read: str | None = None,
    target=None,
    details=None,
) -> tuple[T | None, HubError | None]:
    """The change a form asks for: (its result, None) when done, or (None, the refusal) for the page to be
    shown again with the French message (`refusal.detail`, `refusal.errors` by field, `refusal.status`) and
    the values typed.

    `form_errors` (from load_form) refuse the form like the domain's ValidationFailed, without `perform`.
    `refusals`: which refusals the page shows itself (others go to the error pages). A refusal that audits
    itself (an object the user may not see, a 404) always goes to the error pages. Refused, nothing of the
    change stays; `read` is the audit action of the page shown again (with `target`, `details`)."""
    try:
        if form_errors:
            raise ValidationFailed(form_errors)
        return perform(), None
    except refusals as exc:
        if exc.audit_action:
            raise
        undo_refused_change(read, target=target, details=details)
        return None, exc


def undo_refused_change(read: str | None = None, *, target=None, details=None) -> None:
    """Before a page is shown again instead of the change it was asked: that change is undone, and the page's
    read (`read`, an audit action) is recorded, to be committed with the request."""
    discard_changes()
    if read is not None:
        audit.record(db(), actor=current_user, action=read, target=target, details=details)


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site: an open redirect would make the login page a phishing tool."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target
