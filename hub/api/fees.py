"""Fees (read-only: the workflows accrue them), the 20 % télésoin share, and the tariff table."""

from decimal import Decimal

from flask import request, url_for
from flask_login import current_user

from hub import audit
from hub.api import blueprint, load_json, page_of, pagination
from hub.auth.fees import fees_professional_for, visible_fees
from hub.auth.permissions import Permission
from hub.db import utcnow
from hub.errors import NotFound
from hub.http.access import access
from hub.http.request import db, territory_zone
from hub.schemas.base import load
from hub.schemas.fees import (
    FeeOut,
    FeeQueryArgs,
    RemoteShareArgs,
    RemoteShareOut,
    ShareOverrideOut,
    TariffIn,
    TariffOut,
)
from hub.services import statements, tariffs
from workflows import fees as fee_rules
from workflows import statements as shares


@blueprint.get("/fees")
@access(Permission.FEES_READ_OWN)
def list_fees():
    """A professional lists their own entries; the coordination, its CPTS's."""
    page, per_page = pagination()
    query = load(FeeQueryArgs(), request.args.to_dict())
    professional_id = query.get("professional_id")
    if professional_id is not None:
        fees_professional_for(db(), current_user, professional_id, action="fees.list")
    else:
        audit.record(db(), actor=current_user, action="fees.list", details={"code": query.get("code")})
    lines, total = statements.list_fees(
        db(),
        visible_fees(current_user),
        cpts_id=current_user.cpts_id,
        professional_id=professional_id,
        first=query.get("from_"),
        last=query.get("to"),
        code=query.get("code"),
        page=page,
        per_page=per_page,
    )
    return page_of(FeeOut(), lines, total, page, per_page)


@blueprint.get("/professionals/<int:professional_id>/remote-share")
@access(Permission.FEES_READ_OWN)
def get_remote_share(professional_id: int):
    """The share over a calendar year (`?year=`), or over the rolling year ending today."""
    year = load(RemoteShareArgs(), request.args.to_dict()).get("year")
    professional = fees_professional_for(db(), current_user, professional_id, action="fees.remote_share")
    window = shares.share_window(today=_today(), year=year)
    share = shares.professional_share(db(), professional, window)
    if share is None:
        raise NotFound("La part de télésoin ne concerne que les infirmier·es et les masseurs-kinésithérapeutes.")
    return RemoteShareOut().dump(
        {
            "professional_id": professional.id,
            "period_start": window.first,
            "period_end": window.last,
            "share": share.share,
            "remote_amount": share.remote_amount.quantize(Decimal("0.01")),
            "total_amount": share.total_amount.quantize(Decimal("0.01")) if share.total_amount is not None else None,
            "estimated": share.estimated,
            "level": share.level,
            "warning_at": fee_rules.REMOTE_SHARE_WARNING,
            "limit": fee_rules.REMOTE_SHARE_LIMIT,
        }
    )


@blueprint.get("/fees/remote-share-overrides")
@access(Permission.FEES_READ_CPTS)
def list_remote_share_overrides():
    """The coordination's overrides of the 20 % share in its CPTS, most recent first, with their reasons."""
    page, per_page = pagination()
    audit.record(db(), actor=current_user, action="fees.remote_share_overrides", details={"page": page})
    rows, total = fee_rules.remote_share_overrides(db(), current_user.cpts_id, page=page, per_page=per_page)
    return page_of(ShareOverrideOut(), rows, total, page, per_page)


@blueprint.get("/tariffs")
@access(Permission.TARIFFS_READ)
def list_tariffs():
    page, per_page = pagination()
    code = request.args.get("code") or None
    rows, total = tariffs.list_tariffs(db(), code=code, page=page, per_page=per_page)
    return page_of(TariffOut(), rows, total, page, per_page)


@blueprint.post("/tariffs")
@access(Permission.TARIFFS_MANAGE)
def create_tariff():
    """A new version of a code's tariff, from a date; the open version ends the day before."""
    tariff = tariffs.add_version(db(), current_user, **load_json(TariffIn()))
    return TariffOut().dump(tariff), 201, {"Location": url_for("api.list_tariffs", code=tariff.code)}


def _today():
    return fee_rules.local_day(utcnow(), territory_zone())
