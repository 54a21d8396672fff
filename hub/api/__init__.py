"""The JSON API under /api/v1: personal access tokens (Bearer), marshmallow both ways, problem+json errors."""

from flask import Blueprint, current_app, request, url_for

from hub.errors import HubError
from hub.schemas.base import load

blueprint = Blueprint("api", __name__)

MAX_PAGE_SIZE = 200


class UnsupportedMediaType(HubError):
    status = 415
    title = "Type de contenu non pris en charge"
    type_slug = "unsupported-media-type"


def json_body() -> dict:
    if not request.is_json:
        raise UnsupportedMediaType("Le corps de la requête doit être du JSON (Content-Type: application/json).")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise HubError("Le corps de la requête doit être un objet JSON valide.")
    return data


def load_json(schema, *, partial: bool = False) -> dict:
    return load(schema, json_body(), partial=partial)


def pagination() -> tuple[int, int]:
    default = current_app.config["HUB"]["API_PAGE_SIZE"]
    try:
        page = int(request.args.get("page", 1))
        per_page = int(request.args.get("per_page", default))
    except ValueError as exc:
        raise HubError("Les paramètres page et per_page doivent être des entiers.") from exc
    if page < 1 or not 1 <= per_page <= MAX_PAGE_SIZE:
        raise HubError(f"page doit être ≥ 1 et per_page entre 1 et {MAX_PAGE_SIZE}.")
    return page, per_page


def page_of(schema, items, total: int, page: int, per_page: int) -> dict:
    return {"items": schema.dump(items, many=True), "page": page, "per_page": per_page, "total": total}


def created(body: dict, endpoint: str, **values):
    return body, 201, {"Location": url_for(endpoint, **values)}


from hub.api import (  # noqa: E402,F401  (register the routes)
    appointments,
    fees,
    openapi,
    organisations,
    outbox,
    pathways,
    patients,
    professionals,
    programs,
    referrals,
    reports,
    teleexpertise,
)
