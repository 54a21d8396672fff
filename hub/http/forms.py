"""Helpers shared by the pages: read a form through a schema, safe redirects."""

from urllib.parse import urlsplit

from flask import request

from hub.errors import ValidationFailed
from hub.schemas.base import load


def form_data() -> dict:
    """The submitted form as a dict; a repeated field (checkbox list) stays a list."""
    data = {}
    for key in request.form:
        values = request.form.getlist(key)
        data[key] = values if len(values) > 1 or key.endswith("_ids") else values[0]
    return data


def load_form(schema, *, partial: bool = False) -> tuple[dict | None, dict, dict]:
    """(loaded data or None, raw values to re-display, errors by field)."""
    raw = form_data()
    try:
        return load(schema, raw, partial=partial), raw, {}
    except ValidationFailed as exc:
        return None, raw, exc.errors


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site: an open redirect would make the login page a phishing tool."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target
