"""CSRF tokens bound to the browser session: another session's token, or none, is refused."""

import hashlib
import hmac
import secrets

from flask import current_app, g, request, session

from hub.errors import HubError

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CsrfRefused(HubError):
    status = 400
    title = "Formulaire expiré"
    type_slug = "csrf"


def session_id() -> str:
    if "sid" not in session:
        session["sid"] = secrets.token_urlsafe(24)
    return session["sid"]


def renew_session_id() -> None:
    session["sid"] = secrets.token_urlsafe(24)


def csrf_token() -> str:
    """The session's token, computed once per request and session id: a page with a form per row (« Mes visites »,
    the planning) asks for it in every form, and each HMAC cost a tenth of a millisecond."""
    sid = session_id()
    known = g.get("csrf_token_of")
    if known is not None and known[0] == sid:
        return known[1]
    secret = current_app.secret_key  # set at start: hub.config refuses to run without it
    if not secret:
        raise RuntimeError("SECRET_KEY is not set")
    key = secret.encode() if isinstance(secret, str) else secret
    token = hmac.new(key, b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()
    g.csrf_token_of = (sid, token)
    return token


def check_csrf() -> None:
    if request.method not in UNSAFE_METHODS:
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if "sid" not in session or not hmac.compare_digest(sent, csrf_token()):
        raise CsrfRefused("Le formulaire a expiré ou ne vient pas de cette session. Rechargez la page et recommencez.")
