"""/api/v1/me/service-area: the communes a professional serves at home and the days they work (« Mon profil »)."""

from flask_login import current_user

from hub.api import blueprint, load_json
from hub.http.access import AUTHENTICATED, access, needs_account
from hub.http.request import db
from hub.schemas.service_area import ServiceAreaIn, ServiceAreaOut
from hub.services import service_area


@blueprint.get("/me/service-area")
@access(AUTHENTICATED)
@needs_account
def get_service_area():
    professional = service_area.own_professional(current_user)
    return ServiceAreaOut().dump(service_area.service_area(professional))


@blueprint.put("/me/service-area")
@access(AUTHENTICATED)
@needs_account
def put_service_area():
    professional = service_area.own_professional(current_user)
    data = load_json(ServiceAreaIn())
    service_area.set_service_area(db(), current_user, professional, communes=data["communes"], days=data["days"])
    return ServiceAreaOut().dump(service_area.service_area(professional))
