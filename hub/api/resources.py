"""Kits, rooms and dedicated teleconsultation places of the caller's CPTS (coordination and admin)."""

from flask import request
from flask_login import current_user

from hub.api import blueprint, created, load_json, page_of, pagination
from hub.api.programs import instant
from hub.auth.permissions import Permission
from hub.db import utcnow
from hub.errors import ValidationFailed
from hub.http.access import access
from hub.http.request import db, territory_zone
from hub.schemas.base import load
from hub.schemas.resources import ResourceBookingOut, ResourceIn, ResourceOut, ResourceUpdateIn
from hub.schemas.scheduling import NoBodyIn, SlotWindowArgs
from hub.services import resources


@blueprint.get("/resources")
@access(Permission.RESOURCES_MANAGE)
def list_resources():
    """In service first, then the retired ones (kept with their history)."""
    page, per_page = pagination()
    rows = resources.list_resources(db(), current_user.cpts_id)
    shown = resources.overview(db(), rows[(page - 1) * per_page : page * per_page], now=utcnow())
    return page_of(ResourceOut(), shown, len(rows), page, per_page)


@blueprint.post("/resources")
@access(Permission.RESOURCES_MANAGE)
def create_resource():
    resource = resources.create_resource(db(), current_user, load_json(ResourceIn()))
    return created(_shown(resource), "api.get_resource", resource_id=resource.id)


@blueprint.get("/resources/<int:resource_id>")
@access(Permission.RESOURCES_MANAGE)
def get_resource(resource_id: int):
    return _shown(_resource(resource_id))


@blueprint.patch("/resources/<int:resource_id>")
@access(Permission.RESOURCES_MANAGE)
def update_resource(resource_id: int):
    resource = _resource(resource_id)
    changes = load_json(ResourceUpdateIn(), partial=True)
    if not changes:
        raise ValidationFailed({"_schema": "Aucun champ à modifier."})
    return _shown(resources.update_resource(db(), current_user, resource, changes))


@blueprint.post("/resources/<int:resource_id>/retire")
@access(Permission.RESOURCES_MANAGE)
def retire_resource(resource_id: int):
    """Refused (422, with the programs and the number of upcoming appointments) while it still serves."""
    resource = _resource(resource_id)
    load_json(NoBodyIn())
    return _shown(resources.retire_resource(db(), current_user, resource))


@blueprint.get("/resources/<int:resource_id>/bookings")
@access(Permission.RESOURCES_MANAGE)
def list_resource_bookings(resource_id: int):
    """The appointments holding it over [from, to): dates are local days (`to` included), instants need their
    offset. By default, from now on; a date in the past reads its history."""
    resource = _resource(resource_id)
    page, per_page = pagination()
    args = load(SlotWindowArgs(), {k: v for k, v in request.args.items() if k in ("from", "to")})
    zone = territory_zone()
    start = instant(args.get("start"), zone, end=False) or utcnow()
    end = instant(args.get("end"), zone, end=True)
    if end is not None and end <= start:
        raise ValidationFailed({"to": "La fin de la période précède son début."})
    rows, total = resources.bookings(db(), resource, start=start, end=end, page=page, per_page=per_page)
    return page_of(ResourceBookingOut(), rows, total, page, per_page)


def _resource(resource_id: int):
    return resources.get_resource(db(), resource_id, cpts_id=current_user.cpts_id)


def _shown(resource) -> dict:
    return ResourceOut().dump(resources.overview(db(), [resource], now=utcnow())[0])
