from flask import request
from flask_login import current_user

from hub.api import blueprint, created, load_json, page_of, pagination
from hub.auth.permissions import Permission
from hub.errors import ValidationFailed
from hub.http.access import access
from hub.http.request import db
from hub.models import Profession
from hub.schemas.directory import ProfessionalIn, ProfessionalOut
from hub.services import directory


@blueprint.get("/professionals")
@access(Permission.PROFESSIONALS_READ)
def list_professionals():
    page, per_page = pagination()
    profession = request.args.get("profession")
    if profession and profession not in set(Profession):
        raise ValidationFailed({"profession": "Profession inconnue."})
    rows, total = directory.list_professionals(
        db(),
        current_user.cpts_id,
        profession=profession,
        text=request.args.get("q"),
        page=page,
        per_page=per_page,
    )
    return page_of(ProfessionalOut(), rows, total, page, per_page)


@blueprint.post("/professionals")
@access(Permission.PROFESSIONALS_MANAGE)
def create_professional():
    professional = directory.create_professional(db(), current_user, load_json(ProfessionalIn()))
    return created(ProfessionalOut().dump(professional), "api.get_professional", professional_id=professional.id)


@blueprint.get("/professionals/<int:professional_id>")
@access(Permission.PROFESSIONALS_READ)
def get_professional(professional_id: int):
    return ProfessionalOut().dump(directory.get_professional(db(), current_user.cpts_id, professional_id))


@blueprint.patch("/professionals/<int:professional_id>")
@access(Permission.PROFESSIONALS_MANAGE)
def update_professional(professional_id: int):
    professional = directory.get_professional(db(), current_user.cpts_id, professional_id)
    changes = load_json(ProfessionalIn(), partial=True)
    return ProfessionalOut().dump(directory.update_professional(db(), current_user, professional, changes))
