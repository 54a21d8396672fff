"""Build the Flask application: configuration, database, login, CSRF, headers, errors, blueprints, CLI."""

import datetime as dt
import logging
import uuid
from pathlib import Path
from types import MappingProxyType

from flask import Flask, g, request, session
from flask_login import LoginManager, current_user
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from hub import audit
from hub.auth.permissions import Permission, has_permission
from hub.config import PROJECT_ROOT, load_config
from hub.db import make_engine, make_session_factory
from hub.errors import Forbidden, Unauthorized
from hub.formatting import euros, french_date, french_datetime
from hub.http import errors as error_pages
from hub.http.access import AUTHENTICATED, PENDING_SECOND_FACTOR, PUBLIC, access_rule_of
from hub.http.csrf import check_csrf, csrf_token
from hub.http.request import db, init_unit_of_work
from hub.services import accounts

log = logging.getLogger(__name__)
# Everything else is no-store: patient data must not linger in caches. Calendar apps revalidate the feed
# with its ETag (the feed shows at most initials), and static files carry no data.
REVALIDATED_ENDPOINTS = frozenset({"static", "calendar.feed"})


class RowIdConverter(IntegerConverter):
    """`<int:…>` in every route: a database row id, so at most the largest 32-bit integer. A larger number in
    a URL is a 404 like any unknown id, instead of an integer overflow in PostgreSQL."""

    def __init__(
        self, url_map, fixed_digits: int = 0, min: int | None = None, max: int | None = 2**31 - 1, signed=False
    ):
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def build_app(test_config: dict | None = None) -> Flask:
    app = Flask("hub", instance_path=str(PROJECT_ROOT / "instance"), template_folder="web/templates")
    app.url_map.converters["int"] = RowIdConverter
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
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hub_config["TRUST_PROXY_HOPS"], x_proto=1)

    engine = make_engine(hub_config["DATABASE_URL"])
    app.extensions["hub.engine"] = engine
    app.extensions["hub.sessions"] = make_session_factory(engine)
    accounts.configure_password_hashing(
        time_cost=hub_config["ARGON2_TIME_COST"], memory_cost=hub_config["ARGON2_MEMORY_COST"]
    )

    _init_login(app)
    _init_request_cycle(app)
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


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def _init_login(app: Flask) -> None:
    manager = LoginManager()
    manager.session_protection = None  # sessions are server-side rows; see accounts.resume_session
    manager.init_app(app)

    @manager.request_loader
    def load_user(_request):
        if is_api_request():
            scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
            return accounts.authenticate_token(db(), credentials.strip()) if scheme.lower() == "bearer" else None
        token = session.get("auth_token")
        if not token:
            return None
        user = accounts.resume_session(db(), token, session_limits(app))
        if user is None:
            # Committed at once, outside the request's unit of work: the session's end must stay even if
            # the request, now anonymous, ends in an error page that discards its changes.
            db().commit()
            session.clear()
        return user


def _init_request_cycle(app: Flask) -> None:
    @app.before_request
    def open_request():
        g.request_id = uuid.uuid4().hex
        audit.current_context.set(audit.AuditContext(request_id=g.request_id, ip=request.remote_addr))

    @app.before_request
    def enforce_access():
        if request.endpoint is None or request.endpoint == "static":
            return
        rule = access_rule_of(app.view_functions[request.endpoint])
        if rule == PUBLIC:
            return
        if not is_api_request():
            check_csrf()
        if rule == PENDING_SECOND_FACTOR:
            return
        if not current_user.is_authenticated:
            raise Unauthorized("Connectez-vous pour accéder à cette page.")
        if rule == AUTHENTICATED:
            return
        if rule is None or not has_permission(current_user, Permission(rule)):
            raise Forbidden("Votre rôle ne permet pas cette action.", audit_action=f"access.{request.endpoint}")

    @app.after_request
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

    init_unit_of_work(app)


def _init_templates(app: Flask) -> None:
    zone = app.config["HUB"]["TIMEZONE"]
    app.jinja_env.filters["date_fr"] = french_date
    app.jinja_env.filters["datetime_fr"] = lambda value: french_datetime(value, zone)
    app.jinja_env.filters["euros"] = euros
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["has_permission"] = has_permission
    app.jinja_env.globals["Permission"] = Permission


def _register_blueprints(app: Flask) -> None:
    from hub.api import blueprint as api
    from hub.web import blueprints

    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    app.register_blueprint(api, url_prefix="/api/v1")


def _register_cli(app: Flask) -> None:
    from hub.cli import hub_cli, make_db_cli

    app.cli.add_command(hub_cli)
    app.cli.add_command(make_db_cli())


def check_every_endpoint_declares_access(app: Flask) -> None:
    """Refuse to start with an endpoint that states no access rule: deny by default, and loudly."""
    missing = [name for name, view in app.view_functions.items() if name != "static" and access_rule_of(view) is None]
    if missing:
        raise RuntimeError(f"endpoints without an access rule: {', '.join(sorted(missing))}")
