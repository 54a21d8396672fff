"""The JSON API under /api/v1: personal access tokens (Bearer), marshmallow both ways, problem+json errors."""

from flask import Blueprint, current_app, request, url_for

from hub.errors import HubError
from hub.http.inputs import json_document, query_int
from hub.schemas.base import MAX_PAGE, load

blueprint = Blueprint("api", __name__)

MAX_PAGE_SIZE = 200


class UnsupportedMediaType(HubError):
    status = 415
    title = "Type de contenu non pris en charge"
    type_slug = "unsupported-media-type"


def json_body() -> dict:
    if not request.is_json:
        raise UnsupportedMediaType("Le corps de la requête doit être du JSON (Content-Type: application/json).")
    data = json_document()
    if not isinstance(data, dict):
        raise HubError("Le corps de la requête doit être un objet JSON valide.")
    return data


def load_json(schema, *, partial: bool = False) -> dict:
    return load(schema, json_body(), partial=partial)


def pagination() -> tuple[int, int]:
    default = current_app.config["HUB"]["API_PAGE_SIZE"]
    return query_int("page", 1, maximum=MAX_PAGE), query_int("per_page", default, maximum=MAX_PAGE_SIZE)


def page_of(schema, items, total: int, page: int, per_page: int) -> dict:
    return {"items": schema.dump(items, many=True), "page": page, "per_page": per_page, "total": total}


def created(body: dict, endpoint: str, **values):
    return body, 201, {"Location": url_for(endpoint, **values)}


from hub.api import (  # noqa: E402,F401  (register the routes)
    appointments,
    attendance,
    audit_chain,
    candidates,
    desk,
    fees,
    gp_matching,
    indicators,
    openapi,
    organisations,
    outbox,
    pathways,
    patients,
    professionals,
    programs,
    referrals,
    reports,
    resources,
    series_bookings,
    service_area,
    sessions,
    teleexpertise,
    waiting,
)
