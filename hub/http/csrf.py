"""CSRF tokens bound to the browser session: another session's token, or none, is refused."""

import hashlib
import hmac
import secrets

from flask import current_app, request, session

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
    secret = current_app.secret_key  # set at start: hub.config refuses to run without it
    if not secret:
        raise RuntimeError("SECRET_KEY is not set")
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, b"csrf:" + session_id().encode(), hashlib.sha256).hexdigest()


def check_csrf() -> None:
    if request.method not in UNSAFE_METHODS:
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if "sid" not in session or not hmac.compare_digest(sent, csrf_token()):
        raise CsrfRefused("Le formulaire a expiré ou ne vient pas de cette session. Rechargez la page et recommencez.")
