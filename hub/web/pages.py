"""Helpers shared by the pages: list filters from the query string, page size, a form submitted to a service."""

from flask import current_app, request

from hub.errors import ValidationFailed
from hub.schemas.base import load
from hub.web.forms import load_form


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
