"""Security headers on every response."""

from flask import g, request

# Everything else is no-store: patient data must not linger in caches. Calendar apps revalidate the feed
# with its ETag (the feed shows at most initials), and static files carry no data.
REVALIDATED_ENDPOINTS = frozenset({"static", "calendar.feed"})


def secure_headers(response):
    headers = response.headers
    headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    if request.endpoint not in REVALIDATED_ENDPOINTS:
        headers["Cache-Control"] = "no-store"
    headers["X-Request-Id"] = g.get("request_id", "")
    return response
