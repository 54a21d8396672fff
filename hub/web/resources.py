"""« Matériel et lieux »: the kits, rooms and dedicated teleconsultation places of the CPTS, the programs each one
is assigned to and its bookings; created, edited and retired by the coordination or the admin."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from hub.auth.permissions import Permission
from hub.db import utcnow
from hub.http.access import access
from hub.http.forms import attempt, load_form
from hub.http.request import db
from hub.models import APPOINTMENT_STATE_LABELS, RESOURCE_KIND_LABELS, ResourceKind
from hub.schemas.resources import ResourceEditForm, ResourceForm
from hub.schemas.scheduling import NoBodyForm
from hub.services import directory, resources
from hub.web.pages import submit
from hub.web.planning import STATE_STYLES

bp = Blueprint("resources", __name__, url_prefix="/resources")

# The kinds in the order the list shows them, with the heading of their section.
SECTIONS = {
    ResourceKind.KIT: "Matériel",
    ResourceKind.ROOM: "Salles",
    ResourceKind.DEDICATED_PLACE: "Lieux dédiés à la téléconsultation",
}
KIND_HELP = (
    "Matériel : une mallette connectée (ECG…) que l'IDEL apporte. Salle : une pièce d'une structure. "
    "Lieu dédié : un espace de téléconsultation (cabine, local aménagé) où le patient se rend."
)
UPCOMING_SHOWN = 50
HISTORY_SHOWN = 20


@bp.context_processor
def labels():
    return {"APPOINTMENT_STATE_LABELS": APPOINTMENT_STATE_LABELS, "STATE_STYLES": STATE_STYLES}


@bp.get("")
@access(Permission.RESOURCES_MANAGE)
def index():
    rows = resources.list_resources(db(), current_user.cpts_id)
    views = resources.overview(db(), rows, now=utcnow())
    in_service = {kind: [v for v in views if v.resource.is_active and v.resource.kind is kind] for kind in SECTIONS}
    retired = [v for v in views if not v.resource.is_active]
    return render_template("resources/index.html", sections=SECTIONS, in_service=in_service, retired=retired)


@bp.route("/new", methods=["GET", "POST"])
@access(Permission.RESOURCES_MANAGE)
def new():
    if request.method == "GET":
        return _form("resources/new.html", {})
    resource, values, errors = submit(ResourceForm(), lambda data: resources.create_resource(db(), current_user, data))
    if resource is None:
        return _form("resources/new.html", values, errors, status=422)
    flash(f"« {resource.name} » ajouté(e).", "success")
    return redirect(url_for("resources.show", resource_id=resource.id))


@bp.get("/<int:resource_id>")
@access(Permission.RESOURCES_MANAGE)
def show(resource_id: int):
    return _page(_resource(resource_id))


@bp.route("/<int:resource_id>/edit", methods=["GET", "POST"])
@access(Permission.RESOURCES_MANAGE)
def edit(resource_id: int):
    resource = _resource(resource_id)
    if request.method == "GET":
        return _form(
            "resources/edit.html", {key: getattr(resource, key) for key in resources.EDITABLE}, resource=resource
        )
    done, values, errors = submit(
        ResourceEditForm(), lambda data: resources.update_resource(db(), current_user, resource, data)
    )
    if done is None:
        return _form("resources/edit.html", values, errors, status=422, resource=resource)
    flash(f"« {resource.name} » mis(e) à jour.", "success")
    return redirect(url_for("resources.show", resource_id=resource.id))


@bp.post("/<int:resource_id>/retire")
@access(Permission.RESOURCES_MANAGE)
def retire(resource_id: int):
    resource = _resource(resource_id)
    _data, _values, errors = load_form(NoBodyForm())
    done, refused = attempt(lambda: resources.retire_resource(db(), current_user, resource), form_errors=errors)
    if refused:
        return _page(resource, problem=refused.detail, status=refused.status)
    assert done is not None  # not refused: attempt returned the resource
    flash(f"« {resource.name} » est retiré(e) du service ; son historique reste consultable.", "success")
    return redirect(url_for("resources.show", resource_id=resource.id))


def _resource(resource_id: int):
    return resources.get_resource(db(), resource_id, cpts_id=current_user.cpts_id)


def _form(template: str, values: dict, errors=None, *, status: int = 200, **context):
    options = {
        "kind_options": [(kind.value, RESOURCE_KIND_LABELS[kind]) for kind in SECTIONS],
        "organisation_options": [(o.id, o.name) for o in directory.all_organisations(db(), current_user.cpts_id)],
        "kind_help": KIND_HELP,
    }
    return render_template(template, values=values, errors=errors or {}, **options, **context), status


def _page(resource, *, problem=None, status: int = 200):
    now = utcnow()
    programs = resources.programs_using(db(), [resource.id])[resource.id]
    upcoming, upcoming_total = resources.bookings(db(), resource, start=now, per_page=UPCOMING_SHOWN)
    history, history_total = resources.bookings(db(), resource, ended_by=now, newest_first=True, per_page=HISTORY_SHOWN)
    context = {
        "resource": resource,
        "programs": programs,
        "running": [p for p in programs if resources.is_running(p, now)],
        "upcoming": upcoming,
        "upcoming_total": upcoming_total,
        "history": history,
        "history_total": history_total,
        "problem": problem,
    }
    return render_template("resources/show.html", **context), status
