"""Fees (read-only: the workflows accrue them), the 20 % télésoin share, and the tariff table."""

from decimal import Decimal

from flask import request, url_for
from flask_login import current_user

from hub import audit
from hub.api import blueprint, load_json, page_of, pagination
from hub.auth.fees import fees_professional_for, visible_fees
from hub.auth.permissions import Permission
from hub.db import utcnow
from hub.errors import Forbidden, NotFound
from hub.http.access import access
from hub.http.request import db, territory_zone
from hub.models import Professional
from hub.schemas.base import load
from hub.schemas.fees import (
    ActivityIn,
    ActivityOut,
    AssistanceArgs,
    DeclaredMonthOut,
    FeeOut,
    FeeQueryArgs,
    PharmacyAssistanceOut,
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


@blueprint.get("/professionals/<int:professional_id>/pharmacy-assistance")
@access(Permission.FEES_READ_OWN)
def get_pharmacy_assistance(professional_id: int):
    """A pharmacist's teleconsultations in the officine and their TLM over a calendar year (`?year=`, this one by
    default): nothing before the 5th assistance of the year, then a block of 5 at a time, up to the yearly cap."""
    year = load(AssistanceArgs(), request.args.to_dict()).get("year")
    professional = fees_professional_for(db(), current_user, professional_id, action="fees.pharmacy_assistance")
    if not shares.is_pharmacist(professional):
        raise NotFound("L'assistance aux téléconsultations en officine ne concerne que les pharmacien·nes.")
    assistance = shares.pharmacy_assistance(db(), professional, now=utcnow(), zone=territory_zone(), year=year)
    return PharmacyAssistanceOut().dump(assistance)


@blueprint.get("/professionals/<int:professional_id>/activity")
@access(Permission.FEES_READ_OWN)
def get_declared_activity(professional_id: int):
    """The monthly conventioned activity declared over the rolling year (the base of the 20 % télésoin share),
    each month with the same month a year before, and last year's declared total."""
    professional = _share_professional(fees_professional_for(db(), current_user, professional_id))
    overview = shares.activity_overview(db(), professional, today=_today())
    return ActivityOut().dump(overview) | {"professional_id": professional.id}


@blueprint.post("/professionals/<int:professional_id>/activity")
@access(Permission.ACTIVITY_DECLARE)
def declare_activity(professional_id: int):
    """An IDEL or a kiné declares (or corrects) one month of their own conventioned activity."""
    if professional_id != current_user.professional_id:
        raise NotFound(
            "Professionnel introuvable.",
            audit_action="activity.declare",
            audit_target=("professionals", professional_id),
        )
    professional = db().get_one(Professional, current_user.professional_id)  # its id is the route's, checked above
    if not shares.has_remote_share(professional):
        raise Forbidden(
            "La déclaration d'activité ne concerne que les infirmier·es et les masseurs-kinésithérapeutes.",
            audit_action="activity.declare",
        )
    data = load_json(ActivityIn())
    row = shares.declare_month(db(), current_user, professional, **data, today=_today())
    return DeclaredMonthOut().dump(row)


def _share_professional(professional):
    if not shares.has_remote_share(professional):
        raise NotFound("L'activité déclarée ne concerne que les infirmier·es et les masseurs-kinésithérapeutes.")
    return professional


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
