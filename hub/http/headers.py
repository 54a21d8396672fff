"""Security headers on every response."""

from collections.abc import Mapping
from urllib.parse import urlsplit

from flask import current_app, g, request

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


def _constant_headers(config: Mapping) -> tuple[tuple[str, str, str], ...]:
    """(name, lower-case name, value) of the headers a view may set itself, else set here; none depends on the
    request."""
    headers = {
        "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"frame-ancestors 'none'; form-action {_form_targets(config)}; base-uri 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }
    return tuple((name, name.lower(), value) for name, value in headers.items())


def _constant_headers_of_app() -> tuple[tuple[str, str, str], ...]:
    """Built once per configuration (the app's HUB mapping, which is replaced, never changed, when a test turns
    Pro Santé Connect on). Building the CSP and setting five headers one `setdefault` at a time (a scan of the
    headers and a KeyError each) cost 18 µs of CPU per response, 6.5 µs now (P1, bench/README.md)."""
    config = current_app.config["HUB"]
    extensions = current_app.extensions
    built = extensions.get("hub.security_headers")
    if built is None or built[0] is not config:
        built = (config, _constant_headers(config))
        extensions["hub.security_headers"] = built
    return built[1]


def secure_headers(response):
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    for name, lower, value in _constant_headers_of_app():
        if lower not in present:
            headers.add(name, value)
    if request.endpoint not in REVALIDATED_ENDPOINTS:
        _replace(headers, present, "Cache-Control", "no-store")
    _replace(headers, present, "X-Request-Id", g.get("request_id", ""))
    return response


def _replace(headers, present: set[str], name: str, value: str) -> None:
    """`headers[name] = value` (a view's value replaced where it stands), without its scan of the headers when the
    view did not set that one."""
    if name.lower() in present:
        headers[name] = value
    else:
        headers.add(name, value)
