"""Deny by default: every endpoint states who may call it, or the request is refused.

`@access(Permission.X)` (role check), `@access(AUTHENTICATED)` or `@access(PUBLIC)`. Object checks
(care relation, same CPTS) are made by the view through hub.auth.policies once the object is loaded.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request
from flask_login import current_user
from sqlalchemy import Select

from hub.auth.permissions import Permission, has_permission
from hub.errors import Forbidden, Unauthorized
from hub.http.csrf import check_csrf

PUBLIC = "public"
AUTHENTICATED = "authenticated"
# Reached between the password and the second factor: the user is not logged in yet.
PENDING_SECOND_FACTOR = "pending-second-factor"


def access(rule: str | Permission):
    def decorate(view):
        view.access_rule = rule
        return view

    return decorate


def access_rule_of(view) -> str | Permission | None:
    return getattr(view, "access_rule", None)


@dataclass(frozen=True, slots=True)
class Preload:
    """A light read's own SELECT run with its Bearer token's lookup, in one round trip: `statement` joins
    `accounts.CALLER_OF_TOKEN` to the view's tables (see `accounts.authenticate_token_preloading`), `parameters`
    gives its parameters from the route's arguments. The view reads its rows with `preloaded()`."""

    statement: Select
    parameters: Callable[[dict[str, Any]], dict[str, Any]]


def light_read(view=None, *, preload: Preload | None = None):
    """An API view that only reads, whose one write is its audit rows (see hub.http.request.db): its statements run
    without a transaction (hub.db.without_transaction). A view that writes must not be marked. Its Bearer token
    resolves to an `accounts.Caller`, as every API view's not marked `needs_account`. With `preload`, the token's
    lookup also runs the view's statement (`Preload`)."""

    def mark(view):
        view.light_read = True
        view.preload = preload
        return view

    return mark if view is None else mark(view)


def single_write(view):
    """An API view whose reads take no lock and whose one write of its own is one statement carrying its audit row
    (hub.audit.take_queued), made only if the row is still as read (hub.db.update_by_id_if_unchanged). On
    PostgreSQL its session runs without a transaction, as a light read's: the write is atomic on its own, and the
    BEGIN and COMMIT round trips are saved (each statement already saw its own snapshot under READ COMMITTED). So
    the write is committed as it runs: nothing may fail after it, and a view that may write anything more must not
    be marked. Committed there apart, before the view runs, and kept by a refused request: the Bearer token's
    use stamp (ApiToken.last_used_at, hub.services.accounts), not the view's write. On SQLite its audit row is a
    statement of its own: the transaction stays."""
    view.single_write = True
    return view


def needs_account(view):
    """An API view whose services read the account's ORM rows (`user.professional` and what it leads to: the
    teleexpertise policies, a GP's or a clinician's own record): its Bearer token's `accounts.Caller` is replaced by
    the `User` entity (`accounts.account_of`). Every other API view gets the Caller, which the access rules, the
    policies, the workflows and the audit read as they read a User (id, login, CPTS, professional id, roles)."""
    view.needs_account = True
    return view


def light_page(view):
    """A page whose view, services and templates read of the user only what `accounts.SessionCaller` carries (id,
    login, name, CPTS, professional id and profession, roles): its session cookie resolves to that Caller, read as
    columns, instead of the `User` entity with its professional and roles. A page that hands the user to a service
    reading the account's rows (`user.professional`, relationships) stays unmarked; one that reads them anyway gets
    them one read later, with a warning naming the omission (`Caller.__getattr__`)."""
    view.light_page = True
    return view


def request_view() -> Callable | None:
    """The request's view function, None before routing or when no route matched. Its marks are read from it with
    the functions below: one lookup for several marks (each lookup reads two context proxies, a few µs)."""
    endpoint = request.endpoint
    return None if endpoint is None else current_app.view_functions[endpoint]


def is_light_page() -> bool:
    return getattr(request_view(), "light_page", False)


def runs_without_transaction(dialect_name: str) -> bool:
    """Whether the request's session runs without a transaction: a light read's, a single write's on PostgreSQL."""
    view = request_view()
    return getattr(view, "light_read", False) or (dialect_name == "postgresql" and getattr(view, "single_write", False))


def needs_account_of(view: Callable | None) -> bool:
    """Whether `view` (`request_view()`) is marked `needs_account`."""
    return getattr(view, "needs_account", False)


def preload_of(view: Callable | None) -> Preload | None:
    """The preload `view` (`request_view()`) declares: only a light read may (`light_read(preload=...)`)."""
    return getattr(view, "preload", None)


def keep_preloaded(rows: list[Any]) -> None:
    g.hub_preloaded = rows


def preloaded() -> list[Any] | None:
    """The rows of the request's `Preload` fetched with its token, or None when the caller was not authenticated by
    it (a view must then run its statement itself)."""
    return g.get("hub_preloaded")


def preloaded_row() -> Any | None:
    """The first row of the request's `Preload`, or None when the token's statement found none of it (its columns
    NULL: not in the caller's CPTS, or no such id). For a light read that preloads: a view without its preload is a
    programming error, raised (not an `assert`, which python -O drops, leaving a legitimate read an audited 404)."""
    rows = preloaded()
    if rows is None:
        raise RuntimeError(f"{request.endpoint} reads a preloaded row, but its caller's lookup fetched none")
    return rows[0] if rows and rows[0].id is not None else None


def is_api_request() -> bool:
    """The JSON API and the FHIR API: Bearer tokens, no CSRF, machine-readable errors."""
    return request.path.startswith(("/api/", "/fhir/"))


def enforce_access() -> None:
    """Before every view: its rule, then CSRF for a page's unsafe method, then the login, then the role."""
    endpoint = request.endpoint
    if endpoint is None or endpoint == "static":
        return
    rule = access_rule_of(current_app.view_functions[endpoint])
    if rule == PUBLIC:
        return
    if not is_api_request():
        check_csrf()
    if rule == PENDING_SECOND_FACTOR:
        return
    # The user itself, not the proxy: each attribute read through `current_user` goes through flask-login's lookup.
    user = current_user._get_current_object()
    if not user.is_authenticated:
        raise Unauthorized("Connectez-vous pour accéder à cette page.")
    if rule == AUTHENTICATED:
        return
    if rule is None or not has_permission(user, Permission(rule)):
        raise Forbidden("Votre rôle ne permet pas cette action.", audit_action=f"access.{endpoint}")


def check_every_endpoint_declares_access(app: Flask) -> None:
    """Refuse to start with an endpoint that states no access rule: deny by default, and loudly."""
    missing = [name for name, view in app.view_functions.items() if name != "static" and access_rule_of(view) is None]
    if missing:
        raise RuntimeError(f"endpoints without an access rule: {', '.join(sorted(missing))}")
