"""Security headers on every response."""

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, g, request
from werkzeug.datastructures import Headers

# Everything else is no-store: patient data must not linger in caches. Calendar apps revalidate the feed
# with its ETag (the feed shows at most initials), and static files carry no data.
REVALIDATED_ENDPOINTS = frozenset({"static", "calendar.feed"})


def _form_targets(config: Mapping) -> str:
    """'self', and Pro Santé Connect's origin when it is on: the logout form's answer redirects there to end the
    PSC session too, and browsers apply form-action to a form's redirects."""
    if not config["PSC_ENABLED"]:
        return "'self'"
    issuer = urlsplit(config["PSC_ISSUER"])
    return f"'self' {issuer.scheme}://{issuer.netloc}"


def _constant_headers(config: Mapping) -> tuple[tuple[str, str], ...]:
    """(name, value) of the headers a view may set itself, else set here; none depends on the request."""
    headers = {
        "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"frame-ancestors 'none'; form-action {_form_targets(config)}; base-uri 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }
    # Validated once here (werkzeug refuses a newline in a value) since they are appended unchecked per response.
    return tuple(Headers(headers).items())


@dataclass(frozen=True, slots=True)
class _Built:
    config: Mapping
    constant: tuple[tuple[str, str], ...]
    # What a response that set none of them gets unless revalidated: the constant headers, then no-store.
    no_store: tuple[tuple[str, str], ...]
    ours: frozenset[str]  # the lower-case names of all of them


def _constant_headers_of_app(app) -> _Built:
    """Built once per configuration (the app's HUB mapping, which is replaced, never changed, when a test turns
    Pro Santé Connect on). Building the CSP and setting five headers one `setdefault` at a time (a scan of the
    headers and a KeyError each) cost 18 µs of CPU per response, 6.5 µs then (P1, bench/README.md); appending
    them at once, 4.8 µs instead of 11.6 (same run, loaded machine)."""
    config = app.config["HUB"]
    built = app.extensions.get("hub.security_headers")
    if built is None or built.config is not config:
        constant = _constant_headers(config)
        built = _Built(
            config=config,
            constant=constant,
            no_store=(*constant, ("Cache-Control", "no-store")),
            ours=frozenset({*(name.lower() for name, _ in constant), "cache-control", "x-request-id"}),
        )
        app.extensions["hub.security_headers"] = built
    return built


def secure_headers(response):
    headers = response.headers
    built = _constant_headers_of_app(current_app._get_current_object())  # type: ignore[attr-defined]
    # A revalidated endpoint's answers are cacheable; its errors (an unknown or revoked feed's 404) are not.
    no_store = request.endpoint not in REVALIDATED_ENDPOINTS or response.status_code not in (200, 304)
    request_id = g.get("request_id", "")
    present = {name.lower() for name, _ in headers}
    if present.isdisjoint(built.ours):
        # The common case, a view that set none of them: appended at once to werkzeug's list, without `add`'s
        # check of each constant value (already checked when built) — the request id is still checked.
        headers._list.extend(built.no_store if no_store else built.constant)
        headers.add("X-Request-Id", request_id)
        return response
    for name, value in built.constant:
        if name.lower() not in present:
            headers.add(name, value)
    if no_store:
        _replace(headers, present, "Cache-Control", "no-store")
    _replace(headers, present, "X-Request-Id", request_id)
    return response


def _replace(headers, present: set[str], name: str, value: str) -> None:
    """`headers[name] = value` (a view's value replaced where it stands), without its scan of the headers when the
    view did not set that one."""
    if name.lower() in present:
        headers[name] = value
    else:
        headers.add(name, value)
