from flask import request
from flask_login import current_user

from hub.api import blueprint, created, load_json, page_of, pagination
from hub.auth.guards import patient_for
from hub.auth.permissions import Permission
from hub.auth.policies import pathway_for
from hub.errors import HubError, NotFound
from hub.http.access import AUTHENTICATED, access
from hub.http.inputs import query_int
from hub.http.request import db, territory_zone
from hub.models import Appointment, Modality
from hub.schemas.pathways import (
    EligibilityIn,
    EligibilityOut,
    PathwayIn,
    PathwayOut,
    PathwayReasonIn,
    StepBookingIn,
    TemplateCopyIn,
    TemplateOut,
    TemplateStepsIn,
)
from workflows import eligibility, pathways


@blueprint.get("/pathway-templates")
@access(AUTHENTICATED)
def list_pathway_templates():
    page, per_page = pagination()
    templates = pathways.templates_for(db(), current_user.cpts_id, active_only=False)
    chunk = templates[(page - 1) * per_page : page * per_page]
    return page_of(TemplateOut(), chunk, len(templates), page, per_page)


@blueprint.post("/pathway-templates")
@access(Permission.PATHWAY_TEMPLATES_MANAGE)
def copy_pathway_template():
    data = load_json(TemplateCopyIn())
    source = pathways.template_for(db(), current_user.cpts_id, data.pop("source_id"))
    template = pathways.copy_template(db(), current_user, source, **data)
    return created(TemplateOut().dump(template), "api.list_pathway_templates")


@blueprint.put("/pathway-templates/<int:template_id>/steps")
@access(Permission.PATHWAY_TEMPLATES_MANAGE)
def replace_pathway_template_steps(template_id: int):
    template = pathways.template_for(db(), current_user.cpts_id, template_id)
    steps = load_json(TemplateStepsIn())["steps"]
    return TemplateOut().dump(pathways.replace_steps(db(), current_user, template, steps))


@blueprint.get("/pathways")
@access(Permission.PATHWAYS_MANAGE)
def list_pathways():
    page, per_page = pagination()
    if "patient_id" not in request.args:
        raise HubError("Indiquez le patient : paramètre patient_id (entier).")
    patient = patient_for(db(), current_user, query_int("patient_id", 0), action="pathway.list")
    items = pathways.pathways_of(db(), patient.id)
    return page_of(PathwayOut(), items[(page - 1) * per_page : page * per_page], len(items), page, per_page)


@blueprint.post("/pathways")
@access(Permission.PATHWAYS_MANAGE)
def start_pathway():
    data = load_json(PathwayIn())
    patient = patient_for(db(), current_user, data["patient_id"], action="pathway.start", write=True)
    template = pathways.template_for(db(), patient.cpts_id, data["template_id"])
    started_on = data.get("started_on") or pathways.today(territory_zone())
    pathway = pathways.start(db(), current_user, patient=patient, template=template, started_on=started_on)
    return created(PathwayOut().dump(pathway), "api.get_pathway", pathway_id=pathway.id)


@blueprint.get("/pathways/<int:pathway_id>")
@access(Permission.PATHWAYS_MANAGE)
def get_pathway(pathway_id: int):
    return PathwayOut().dump(pathway_for(db(), current_user, pathway_id))


@blueprint.post("/pathways/<int:pathway_id>/steps/<int:step_id>/skip")
@access(Permission.PATHWAYS_MANAGE)
def skip_pathway_step(pathway_id: int, step_id: int):
    pathway = pathway_for(db(), current_user, pathway_id, action="pathway.step.skip")
    step = pathways.step_of(pathway, step_id)
    pathways.skip_step(db(), current_user, step, reason=load_json(PathwayReasonIn())["reason"])
    return PathwayOut().dump(pathway)


@blueprint.post("/pathways/<int:pathway_id>/steps/<int:step_id>/book")
@access(Permission.PATHWAYS_MANAGE)
def book_pathway_step(pathway_id: int, step_id: int):
    pathway = pathway_for(db(), current_user, pathway_id, action="pathway.step.book")
    step = pathways.step_of(pathway, step_id)
    appointment = db().get(Appointment, load_json(StepBookingIn())["appointment_id"])
    if appointment is None or appointment.patient_id != pathway.patient_id:
        raise NotFound("Rendez-vous introuvable.")
    pathways.book_step(db(), current_user, step, appointment=appointment)
    return PathwayOut().dump(pathway)


@blueprint.post("/pathways/<int:pathway_id>/steps/<int:step_id>/done")
@access(Permission.PATHWAYS_MANAGE)
def complete_pathway_step(pathway_id: int, step_id: int):
    pathway = pathway_for(db(), current_user, pathway_id, action="pathway.step.done")
    pathways.mark_done(db(), current_user, pathways.step_of(pathway, step_id))
    return PathwayOut().dump(pathway)


@blueprint.post("/pathways/<int:pathway_id>/stop")
@access(Permission.PATHWAYS_MANAGE)
def stop_pathway(pathway_id: int):
    pathway = pathway_for(db(), current_user, pathway_id, action="pathway.stop")
    pathways.stop(db(), current_user, pathway, reason=load_json(PathwayReasonIn())["reason"])
    return PathwayOut().dump(pathway)


@blueprint.post("/patients/<int:patient_id>/eligibility")
@access(Permission.PATHWAYS_MANAGE)
def assess_eligibility(patient_id: int):
    patient = patient_for(db(), current_user, patient_id, action="eligibility.assess", write=True)
    assessment = eligibility.assess(db(), current_user, patient, load_json(EligibilityIn()), zone=territory_zone())
    return EligibilityOut().dump(assessment), 201


@blueprint.get("/patients/<int:patient_id>/eligibility")
@access(Permission.PATHWAYS_MANAGE)
def get_eligibility(patient_id: int):
    patient = patient_for(db(), current_user, patient_id, action="eligibility.read")
    try:
        modality = Modality(request.args.get("modality", Modality.TELESOIN.value))
    except ValueError as exc:
        raise HubError("Modalité inconnue : telesoin ou assisted_teleconsultation.") from exc
    assessment = eligibility.latest_assessment(db(), patient, modality)
    if assessment is None:
        raise NotFound("Aucune vérification d'éligibilité pour cette modalité.")
    return EligibilityOut().dump(assessment)
