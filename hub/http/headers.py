"""Security headers on every response."""

from urllib.parse import urlsplit

from flask import current_app, g, request

# Everything else is no-store: patient data must not linger in caches. Calendar apps revalidate the feed
# with its ETag (the feed shows at most initials), and static files carry no data.
REVALIDATED_ENDPOINTS = frozenset({"static", "calendar.feed"})


def _form_targets() -> str:
    """'self', and Pro Santé Connect's origin when it is on: the logout form's answer redirects there to end the
    PSC session too, and browsers apply form-action to a form's redirects."""
    config = current_app.config["HUB"]
    if not config["PSC_ENABLED"]:
        return "'self'"
    issuer = urlsplit(config["PSC_ISSUER"])
    return f"'self' {issuer.scheme}://{issuer.netloc}"


def secure_headers(response):
    headers = response.headers
    headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"frame-ancestors 'none'; form-action {_form_targets()}; base-uri 'none'",
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    if request.endpoint not in REVALIDATED_ENDPOINTS:
        headers["Cache-Control"] = "no-store"
    headers["X-Request-Id"] = g.get("request_id", "")
    return response
