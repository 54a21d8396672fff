"""The user's own space: personal access tokens for the JSON API."""

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from hub.auth.permissions import Permission
from hub.http.access import access
from hub.http.request import db, territory_zone
from hub.schemas.account import ApiTokenForm
from hub.services import accounts
from hub.web.pages import submit

bp = Blueprint("me", __name__, url_prefix="/me")


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
