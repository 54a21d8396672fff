"""Build the Flask application: configuration, database, login, CSRF, headers, errors, blueprints, CLI."""

import datetime as dt
import logging
from pathlib import Path
from types import MappingProxyType

from flask import Flask, current_app, g, request, session
from flask.sessions import SecureCookieSessionInterface
from flask.templating import Environment
from flask_login import LoginManager
from werkzeug.exceptions import NotFound
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, ValidationError

from hub import audit
from hub.auth.permissions import Permission, has_permission
from hub.config import PROJECT_ROOT, load_config
from hub.db import make_engine, make_session_factory
from hub.formatting import euros, file_size, french_date, french_datetime, french_phone, number, tel_uri
from hub.http import errors as error_pages
from hub.http.access import (
    check_every_endpoint_declares_access,
    is_api_request,
    is_light_page,
    keep_preloaded,
    needs_account_of,
    preload_of,
    request_view,
)
from hub.http.csrf import csrf_token
from hub.http.request import db, init_request_cycle
from hub.models import appointment_state_label
from hub.services import accounts, outbox_messages
from hub.services.communes import commune_label

log = logging.getLogger(__name__)


class RowIdConverter(IntegerConverter):
    """`<int:…>` in every route: a database row id, so at most the largest 32-bit integer. A larger number in
    a URL is a 404 like any unknown id, instead of an integer overflow in PostgreSQL."""

    def __init__(
        self, url_map, fixed_digits: int = 0, min: int | None = None, max: int | None = 2**31 - 1, signed=False
    ):
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str) -> int:
        # Werkzeug checks converters after methods: a refused value would make the other methods' rules of the
        # same path answer 405 (a PATCH beyond 2³¹ "allowing" GET). The path exists; the row does not.
        try:
            return super().to_python(value)
        except ValidationError:
            raise NotFound() from None


class _SessionCookies(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, but a request without the cookie (every API call) gets its empty session
    before the cookie's signing serializer is built: building it (a key derivation, a serializer) cost a few
    percent of a light read (P1). A request with the cookie is read as before."""

    def open_session(self, app, request):
        # Without any Cookie header (an API call), not even the cookies are parsed.
        if not request.environ.get("HTTP_COOKIE") or not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class() if app.secret_key else None
        return super().open_session(app, request)


class _Templates(Environment):
    """Flask's Jinja environment, but a template without globals of its own reads the environment's through a
    read-only view instead of a ChainMap: Jinja copies a template's globals into every render's context and
    compares their keys at every `{% from … import %}`, and ChainMap does both key by key in Python, a fifth of
    the « Mes visites » template's CPU. The view still shows globals added later; writing through it fails
    loudly where a ChainMap would have kept the write to the template (nothing here passes template globals)."""

    def make_globals(self, d):
        if d:
            return super().make_globals(d)
        return MappingProxyType(self.globals)


def build_app(test_config: dict | None = None) -> Flask:
    app = Flask("hub", instance_path=str(PROJECT_ROOT / "instance"), template_folder="web/templates")
    app.jinja_environment = _Templates
    app.url_map.converters["int"] = RowIdConverter
    app.session_interface = _SessionCookies()
    hub_config = load_config(Path(app.instance_path), test_config)
    app.config.update(
        SECRET_KEY=hub_config["SECRET_KEY"],
        MAX_CONTENT_LENGTH=hub_config["MAX_CONTENT_LENGTH"],
        SESSION_COOKIE_NAME="hub_session",
        SESSION_COOKIE_SECURE=hub_config["ENV"] != "development",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        TESTING=hub_config["ENV"] == "testing",
        JSON_SORT_KEYS=False,
    )
    app.config["HUB"] = MappingProxyType(hub_config)
    if hub_config["TRUST_PROXY_HOPS"]:
        # Flask's documented way to wrap the WSGI application; its stubs declare wsgi_app a method.
        proxied = ProxyFix(app.wsgi_app, x_for=hub_config["TRUST_PROXY_HOPS"], x_proto=1)
        app.wsgi_app = proxied  # type: ignore[method-assign]

    engine = make_engine(
        hub_config["DATABASE_URL"],
        statement_timeout_ms=hub_config["STATEMENT_TIMEOUT_MS"],
        lock_timeout_ms=hub_config["LOCK_TIMEOUT_MS"],
    )
    app.extensions["hub.engine"] = engine
    app.extensions["hub.sessions"] = make_session_factory(engine)
    # SQLite only: PostgreSQL already flushes the WAL of concurrent commits together, and committing the reads'
    # rows by batches, one batch at a time, cost a process's threads a third of their reads per second (P1).
    app.extensions["hub.audit_commits"] = audit.GroupCommit() if engine.dialect.name == "sqlite" else None
    accounts.configure_password_hashing(
        time_cost=hub_config["ARGON2_TIME_COST"], memory_cost=hub_config["ARGON2_MEMORY_COST"]
    )

    _init_login(app)
    init_request_cycle(app)
    _init_templates(app)
    error_pages.register(app)
    _register_blueprints(app)
    _register_cli(app)
    check_every_endpoint_declares_access(app)
    return app


def session_limits(app: Flask) -> accounts.SessionLimits:
    config = app.config["HUB"]
    return accounts.SessionLimits(
        idle=dt.timedelta(minutes=config["SESSION_IDLE_MINUTES"]),
        absolute=dt.timedelta(hours=config["SESSION_ABSOLUTE_HOURS"]),
    )


class _LoginManager(LoginManager):
    """flask-login, without its work that the hub does not use, on every request that reads `current_user`.

    - Session protection is off (sessions are server-side rows, see accounts.resume_session), but flask-login
      hashes the client's address and user agent (SHA-512) before looking at the setting: skipped.
    - An API request is authenticated by its Bearer token alone: no cookie, no session key, no remember-me to look
      at, and nothing listens to flask-login's signals. Its user is stored where flask-login's `current_user` reads
      it (`g._login_user`, an anonymous user when there is none): ~13 µs less per request (P1)."""

    def _session_protection_failed(self):
        return False if self.session_protection is None else super()._session_protection_failed()

    def _load_user(self):
        if not is_api_request():
            return super()._load_user()
        g._login_user = _bearer_user() or self.anonymous_user()
        return None


def _init_login(app: Flask) -> None:
    manager = _LoginManager()
    manager.session_protection = None
    manager.init_app(app)

    @manager.request_loader
    def load_user(_request):
        token = session.get("auth_token")
        if not token:
            return None
        resume = accounts.resume_session_light if is_light_page() else accounts.resume_session
        user = resume(db(), token, session_limits(app))
        if user is None:
            # Committed at once, outside the request's unit of work: the session's end must stay even if
            # the request, now anonymous, ends in an error page that discards its changes.
            db().commit()
            session.clear()
        return user


def _bearer_user():
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    raw = credentials.strip()
    view = request_view()
    preload = preload_of(view)
    if preload is None:
        caller = accounts.authenticate_token_light(db(), raw)
    else:
        # The view's statement runs with the token's lookup (one round trip); the view reads its rows.
        caller, rows = accounts.authenticate_token_preloading(
            db(), raw, preload.statement, preload.parameters(request.view_args or {})
        )
        if caller is not None:
            keep_preloaded(rows)
    if caller is not None and needs_account_of(view):
        return accounts.account_of(db(), caller)
    return caller


def _init_templates(app: Flask) -> None:
    zone = app.config["HUB"]["TIMEZONE"]
    app.jinja_env.filters["date_fr"] = french_date
    app.jinja_env.filters["datetime_fr"] = lambda value: french_datetime(value, zone)
    app.jinja_env.filters["euros"] = euros
    app.jinja_env.filters["number_fr"] = number
    app.jinja_env.filters["file_size"] = file_size
    app.jinja_env.filters["commune"] = commune_label
    app.jinja_env.filters["phone_fr"] = french_phone
    app.jinja_env.filters["tel"] = tel_uri
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["has_permission"] = has_permission
    app.jinja_env.globals["Permission"] = Permission
    # The « Envois en retard » warning's threshold (HUB_OUTBOX_ALERT_MINUTES), read at each render as the API does.
    app.jinja_env.globals["outbox_alert_after"] = lambda: outbox_messages.alert_after(current_app.config["HUB"])
    from hub.web.layout import page_layout
    from hub.web.pages import fixed_url
    from hub.web.states import allows

    app.jinja_env.globals["allows"] = allows
    app.jinja_env.globals["page_layout"] = page_layout
    app.jinja_env.globals["fixed_url"] = fixed_url
    app.jinja_env.globals["appointment_state_label"] = appointment_state_label


def _register_blueprints(app: Flask) -> None:
    from hub.api import blueprint as api
    from hub.api.fhir import blueprint as fhir
    from hub.web import blueprints

    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    app.register_blueprint(api, url_prefix="/api/v1")
    app.register_blueprint(fhir, url_prefix="/fhir")


def _register_cli(app: Flask) -> None:
    from hub.cli import hub_cli, make_db_cli

    app.cli.add_command(hub_cli)
    app.cli.add_command(make_db_cli())
