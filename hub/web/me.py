"""The user's own space, « Mon profil »: identity, own password, second factor, calendar link, API tokens.

Credentials are changed here only, never through the API: a personal API token must not be able to change
the password or the second factor it stands for."""

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, flash, redirect, render_template, session, url_for
from flask_login import current_user

from hub.auth.permissions import Permission
from hub.db import utcnow
from hub.http.access import AUTHENTICATED, access
from hub.http.request import db, territory_zone
from hub.models import ROLE_LABELS, User
from hub.schemas.account import ApiTokenForm, OwnPasswordForm, OwnTotpForm
from hub.schemas.service_area import ServiceAreaForm
from hub.services import accounts, calendar_feeds, service_area
from hub.web.auth import THROTTLED, client_ip, enrolment_qr, login_limits
from hub.web.pages import submit

bp = Blueprint("me", __name__, url_prefix="/me")

# The new key waits in the (signed) session cookie between the page that shows it and the code that proves it,
# as at the first login (hub.web.auth.enrol).
NEW_TOTP_KEY = "new_totp_secret"


@bp.get("")
@access(AUTHENTICATED)
def profile():
    return _profile_page()


@bp.post("/password")
@access(AUTHENTICATED)
def change_password():
    if refused := _with_current_password(OwnPasswordForm(), _change_password, _profile_page):
        return refused
    flash("Mot de passe modifié. Vos autres sessions ouvertes ont été fermées.", "success")
    return redirect(url_for("me.profile"))


@bp.get("/second-factor")
@access(AUTHENTICATED)
def second_factor():
    return _second_factor_page()


@bp.post("/second-factor")
@access(AUTHENTICATED)
def replace_second_factor():
    if NEW_TOTP_KEY not in session:
        return redirect(url_for("me.second_factor"))
    if refused := _with_current_password(OwnTotpForm(), _replace_totp, _second_factor_page):
        return refused
    session.pop(NEW_TOTP_KEY, None)
    flash(
        "Nouvelle application d'authentification enregistrée : l'ancienne ne donne plus de code valable. "
        "Vos autres sessions ouvertes ont été fermées.",
        "success",
    )
    return redirect(url_for("me.profile"))


def _change_password(data: dict) -> bool:
    accounts.change_own_password(
        db(),
        _me(),
        current=data["current_password"],
        new=data["new_password"],
        confirmation=data["new_password_confirmation"],
        keep_session=session.get("auth_token"),
    )
    return True


def _replace_totp(data: dict) -> bool:
    accounts.replace_own_totp(
        db(),
        _me(),
        password=data["current_password"],
        secret=session[NEW_TOTP_KEY],
        code=data["code"],
        keep_session=session.get("auth_token"),
    )
    return True


def _me() -> User:
    # The account itself, not Flask-Login's proxy: the audit line names its target by the object's type.
    return current_user._get_current_object()


def _with_current_password(schema, change, page):
    """A change of one's credentials, which asks for the current password: None when done, else the page again
    with the refusal. A stolen session must not become a way to guess the password: the change is refused while
    logins are throttled, and a wrong password counts as a failed login, recorded after the refused change was
    undone, so that it stays."""
    if accounts.is_throttled(db(), current_user.login, client_ip(), login_limits(), now=utcnow()):
        return page(errors={"current_password": THROTTLED}, status=429)
    _done, _values, errors = submit(schema, change)
    if not errors:
        return None
    if errors.get("current_password") == accounts.WRONG_CURRENT_PASSWORD:
        accounts.record_login_failure(
            db(), current_user.login, client_ip(), factor="reauthentication", user=current_user
        )
    return page(errors=errors, status=422)


def _profile_page(*, errors: dict | None = None, status: int = 200):
    professional = current_user.professional
    context = {
        "roles": [ROLE_LABELS[role] for role in sorted(current_user.roles)],
        "professional": professional,
        "feed": calendar_feeds.active_feed(db(), professional.id) if professional else None,
        "tokens": [t for t in accounts.list_api_tokens(db(), current_user) if _usable(t)],
        **(service_area.summary(professional) if professional else {}),
        # Passwords are never sent back to the browser.
        "values": {},
        "errors": errors or {},
    }
    return render_template("me/profile.html", **context), status


def _usable(token) -> bool:
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > utcnow())


def _second_factor_page(*, errors: dict | None = None, status: int = 200):
    secret = session.get(NEW_TOTP_KEY) or accounts.new_totp_secret()
    session[NEW_TOTP_KEY] = secret
    uri = accounts.totp_provisioning_uri(current_user, secret)
    context = {"secret": secret, "qr": enrolment_qr(uri), "values": {}, "errors": errors or {}}
    return render_template("me/second_factor.html", **context), status


@bp.get("/service-area")
@access(AUTHENTICATED)
def service_area_form():
    professional = service_area.own_professional(current_user)
    area = service_area.service_area(professional)
    return _service_area_page(professional, {"communes": area.communes, "days": [str(d) for d in area.days]})


@bp.post("/service-area")
@access(AUTHENTICATED)
def save_service_area():
    professional = service_area.own_professional(current_user)

    def save(data: dict) -> bool:
        service_area.set_service_area(db(), _me(), professional, communes=data["communes"], days=data["days"])
        return True

    done, values, errors = submit(ServiceAreaForm(), save)
    if not done:
        # An item's error ("days.0") goes beside its list of checkboxes.
        beside = {name.split(".")[0]: message for name, message in errors.items()}
        return _service_area_page(professional, _as_lists(values), beside, status=422)
    flash(
        "Zone d'intervention enregistrée : les visites vous sont proposées selon ces communes et ces jours.", "success"
    )
    return redirect(url_for("me.profile"))


def _as_lists(values: dict) -> dict:
    # A single ticked checkbox comes back as a plain value.
    return {key: [value] if isinstance(value, str) else value for key, value in values.items()}


def _service_area_page(professional, values: dict, errors: dict | None = None, *, status: int = 200):
    context = {
        "professional": professional,
        "communes": service_area.commune_choices(),
        "weekdays": service_area.WEEKDAYS,
        "values": values,
        "errors": errors or {},
    }
    return render_template("me/service_area.html", **context), status


@bp.get("/tokens")
@access(Permission.TOKENS_MANAGE_OWN)
def tokens():
    return _tokens_page()


@bp.post("/tokens")
@access(Permission.TOKENS_MANAGE_OWN)
def create_token():
    created, values, errors = submit(ApiTokenForm(), _create)
    if created is None:
        return _tokens_page(
            values, {"expires_on" if k == "expires_at" else k: v for k, v in errors.items()}, status=422
        )
    token, raw = created
    # The secret exists only in this response: rendered here, never put in a flash cookie or a URL.
    return _tokens_page(new_token=token, raw_token=raw, status=201)


@bp.post("/tokens/<int:token_id>/revoke")
@access(Permission.TOKENS_MANAGE_OWN)
def revoke_token(token_id: int):
    token = accounts.revoke_api_token(db(), current_user, token_id)
    flash(f"Jeton « {token.name} » révoqué : il ne donne plus accès à l'API.", "success")
    return redirect(url_for("me.tokens"))


def _create(data: dict):
    expires_at = None
    if data.get("expires_on"):
        # Valid through the chosen day, in the territory's wall time.
        zone = ZoneInfo(territory_zone())
        expires_at = dt.datetime.combine(data["expires_on"] + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return accounts.create_api_token(db(), current_user, name=data["name"], expires_at=expires_at)


def _tokens_page(values=None, errors=None, *, status: int = 200, **context):
    rows = accounts.list_api_tokens(db(), current_user)
    return render_template("me/tokens.html", tokens=rows, values=values or {}, errors=errors or {}, **context), status
