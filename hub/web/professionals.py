"""The directory of the CPTS's professionals."""

from flask import Blueprint, render_template
from flask_login import current_user

from hub.auth.permissions import Permission
from hub.http.access import access
from hub.http.request import db
from hub.models import PROFESSION_LABELS
from hub.schemas.directory import ProfessionalSearchForm
from hub.services import directory
from hub.web.pages import load_query, page_size

bp = Blueprint("professionals", __name__, url_prefix="/professionals")


@bp.context_processor
def labels():
    return {"PROFESSION_LABELS": PROFESSION_LABELS}


@bp.get("")
@access(Permission.PROFESSIONALS_READ)
def index():
    filters, values, errors = load_query(ProfessionalSearchForm())
    page, per_page = filters["page"], page_size()
    professionals, total = directory.list_professionals(
        db(),
        current_user.cpts_id,
        profession=filters.get("profession"),
        text=filters.get("q"),
        page=page,
        per_page=per_page,
    )
    args = {key: values[key] for key in ("q", "profession") if values.get(key) and key not in errors}
    context = {"professionals": professionals, "total": total, "page": page, "per_page": per_page, "args": args}
    return render_template("professionals/index.html", values=values, errors=errors, **context)


@bp.get("/<int:professional_id>")
@access(Permission.PROFESSIONALS_READ)
def show(professional_id: int):
    professional = directory.get_professional(db(), current_user.cpts_id, professional_id)
    return render_template("professionals/show.html", professional=professional)
