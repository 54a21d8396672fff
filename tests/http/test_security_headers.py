"""S15's security headers (hub.http.headers), built once per configuration (P1): the same headers, in the same
order, byte for byte, as when each was set per request with `setdefault`; a view's own value kept where it stands."""

from types import MappingProxyType

from flask import Response, g

from hub.http.headers import secure_headers

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
CONSTANT = [
    ("Strict-Transport-Security", "max-age=63072000; includeSubDomains"),
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
]


def _after_view(app, path: str, response: Response) -> list[tuple[str, str]]:
    with app.test_request_context(path):
        app.preprocess_request()
        g.request_id = "r-1"
        return list(secure_headers(response).headers.items())


def test_a_page_gets_every_header_after_its_own_in_order(app):
    headers = _after_view(app, "/login", Response("x", mimetype="text/html"))
    assert headers == [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", "1"),
        *CONSTANT,
        ("Cache-Control", "no-store"),
        ("X-Request-Id", "r-1"),
    ]


def test_a_views_own_values_stay_where_they_are(app):
    """A download sets nosniff and no-store itself; the feed its own Cache-Control, which is kept (revalidated)."""
    download = Response("x", headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private"})
    assert _after_view(app, "/login", download) == [
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "no-store"),
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", "1"),
        *[header for header in CONSTANT if header[0] != "X-Content-Type-Options"],
        ("X-Request-Id", "r-1"),
    ]
    feed = Response("x", headers={"Cache-Control": "private, no-cache", "X-Frame-Options": "SAMEORIGIN"})
    assert _after_view(app, "/ical/abc.ics", feed) == [
        ("Cache-Control", "private, no-cache"),
        ("X-Frame-Options", "SAMEORIGIN"),
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", "1"),
        *[header for header in CONSTANT if header[0] != "X-Frame-Options"],
        ("X-Request-Id", "r-1"),
    ]


def test_an_api_answer_gets_the_same_headers(client):
    response = client.get("/api/v1/patients/1")
    assert response.status_code == 401
    ours = [name for name, _ in CONSTANT] + ["Cache-Control"]
    assert [header for header in response.headers.items() if header[0] in ours] == [
        *CONSTANT,
        ("Cache-Control", "no-store"),
    ]


def test_built_once_per_configuration_and_again_when_it_is_replaced(app, monkeypatch):
    _after_view(app, "/login", Response("x"))
    built = app.extensions["hub.security_headers"]
    _after_view(app, "/login", Response("x"))
    assert app.extensions["hub.security_headers"] is built
    psc = {"PSC_ENABLED": True, "PSC_ISSUER": "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"}
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], **psc}))
    headers = dict(_after_view(app, "/login", Response("x")))
    assert "form-action 'self' https://auth.esw.esante.gouv.fr; base-uri" in headers["Content-Security-Policy"]
