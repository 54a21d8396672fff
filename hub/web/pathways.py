"""Care pathway pages: start a pathway and act on its steps from the patient's record, the coordinator's
"étapes à programmer" queue, and the télésoin eligibility checklist (HAS)."""

import datetime as dt

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from hub import audit
from hub.auth.guards import patient_for
from hub.auth.permissions import Permission
from hub.auth.policies import pathway_for
from hub.errors import ValidationFailed
from hub.formatting import french_datetime
from hub.http.access import access
from hub.http.forms import attempt, load_form
from hub.http.request import db, territory_zone
from hub.models import MODALITY_LABELS, PLACE_KIND_LABELS, PROFESSION_LABELS, Modality, Profession, Professional, Slot
from hub.schemas.base import load
from hub.schemas.pathways import (
    ACT_KIND_CHOICES,
    MAX_TEMPLATE_STEPS,
    EligibilityForm,
    PathwayStartForm,
    QueueForm,
    SkipForm,
    StepBookingForm,
    TemplateCopyForm,
    TemplateStepsIn,
)
from hub.schemas.scheduling import PathwayScheduleForm
from hub.web.pages import load_query, telesoin_choices
from scheduling import board
from workflows import appointments, eligibility, pathways, series_booking

bp = Blueprint("pathways", __name__)
QUEUE_HORIZON = dt.timedelta(days=14)


@bp.app_context_processor
def labels():
    return {
        "MODALITY_LABELS": MODALITY_LABELS,
        "STEP_STATE_LABELS": pathways.STEP_STATE_LABELS,
        "PATHWAY_STATE_LABELS": pathways.PATHWAY_STATE_LABELS,
        "OUTCOME_LABELS": eligibility.OUTCOME_LABELS,
        "ALTERNATIVES": eligibility.ALTERNATIVES,
        "PROFESSION_LABELS": PROFESSION_LABELS,
        "BOOKABLE_MODALITIES": {modality.value for modality in pathways.STEP_PROGRAM_KINDS},
    }


@bp.get("/parcours/a-programmer")
@access(Permission.APPOINTMENTS_BOOK)
def queue():
    filters, _values, errors = load_query(QueueForm())
    until = filters.get("until") or pathways.today(territory_zone()) + QUEUE_HORIZON
    rows = pathways.next_due_steps(db(), current_user.cpts_id, until=until)
    audit.record(db(), actor=current_user, action="pathway.queue", details={"results": len(rows)})
    return render_template(
        "pathways/queue.html", rows=rows, until=until, errors=errors, today=pathways.today(territory_zone())
    )


@bp.post("/patients/<int:patient_id>/parcours")
@access(Permission.PATHWAYS_MANAGE)
def start(patient_id: int):
    patient = patient_for(db(), current_user, patient_id, action="pathway.start", write=True)

    def perform(data):
        template = pathways.template_for(db(), patient.cpts_id, data["template_id"])
        started_on = data.get("started_on") or pathways.today(territory_zone())
        pathways.start(db(), current_user, patient=patient, template=template, started_on=started_on)

    return _record_action(patient.id, PathwayStartForm(), perform, "Parcours démarré.")


@bp.post("/parcours/<int:pathway_id>/etapes/<int:step_id>/sauter")
@access(Permission.PATHWAYS_MANAGE)
def skip_step(pathway_id: int, step_id: int):
    pathway = pathway_for(db(), current_user, pathway_id, action="pathway.step.skip")

    def perform(data):
        pathways.skip_step(db(), current_user, pathways.step_of(pathway, step_id), reason=data["reason"])

    return _record_action(pathway.patient_id, SkipForm(), perform, "Étape sautée.")


@bp.route("/parcours/<int:pathway_id>/etapes/<int:step_id>/programmer", methods=["GET", "POST"])
@access(Permission.APPOINTMENTS_BOOK)
def book_step(pathway_id: int, step_id: int):
    """The coordinator books a due step: the next free slots of the programs of its modality and profession,
    the place and the IDEL; every booking guard applies (consent, eligibility, no double booking)."""
    pathway = pathway_for(db(), current_user, pathway_id, action="pathway.step.book")
    step = pathways.step_of(pathway, step_id)
    if request.method == "GET":
        return _step_booking_page(pathway, step, {"place_kind": "lieu_dedie"})
    data, values, errors = load_form(StepBookingForm())

    def perform():
        slot = db().get(Slot, data["slot_id"])
        if slot is None or slot.program.cpts_id != pathway.cpts_id:
            raise ValidationFailed({"slot_id": "Choisissez un des créneaux proposés."})
        accompanying = db().get(Professional, data["accompanying_id"]) if data.get("accompanying_id") else None
        if data.get("accompanying_id") and (accompanying is None or accompanying.cpts_id != pathway.cpts_id):
            raise ValidationFailed({"accompanying_id": "Professionnel inconnu dans la CPTS."})
        return pathways.book_step_into_slot(
            db(),
            current_user,
            step,
            slot,
            place_kind=data["place_kind"],
            accompanying=accompanying,
            telesoin=appointments.TelesoinAct.from_booking(data),
        )

    appointment, refused = attempt(perform, form_errors=errors, read="pathway.step.book", target=pathway)
    if refused:
        return _step_booking_page(
            pathway, step, values, refused.errors, problem=refused.detail, status=refused.status, refusal=refused
        )
    assert appointment is not None  # not refused: attempt returned the appointment
    when = french_datetime(appointment.starts_at, territory_zone())
    flash(f"Étape « {step.name} » programmée : {when}.", "success")
    for warning in appointments.booking_warnings(db(), appointment):
        flash(warning, "warning")
    return redirect(url_for("pathways.queue"))


@bp.route("/parcours/<int:pathway_id>/programmer-les-etapes", methods=["GET", "POST"])
@access(Permission.APPOINTMENTS_BOOK)
def schedule(pathway_id: int):
    """Every planned step of the pathway with the slot proposed for it and its conflicts, checked at once before
    anything is saved; then the coordinator books the free ones, or all of them or nothing."""
    pathway = pathway_for(db(), current_user, pathway_id, action="pathway.step.book")
    if request.method == "GET":
        plans, refused = attempt(
            lambda: series_booking.check_pathway(db(), pathway), read="pathway.read", target=pathway
        )
        return _schedule_page(pathway, {}, plans=plans, refused=refused)
    data, values, errors = load_form(PathwayScheduleForm())
    zone = territory_zone()

    def perform():
        return series_booking.book_pathway(
            db(), current_user, pathway, all_or_nothing=data["all_or_nothing"], zone=zone
        )

    done, refused = attempt(perform, form_errors=errors, read="pathway.read", target=pathway)
    if refused:
        return _schedule_page(pathway, values, refused=refused, conflicts=refused.extra.get("steps"))
    assert done is not None  # not refused: attempt returned the booked and the left out
    booked, left_out = done
    flash(f"Étapes programmées : {len(booked)}.", "success")
    for plan in left_out:
        flash(f"Non programmée — « {plan.step.name} » : {', '.join(plan.problems)}.", "warning")
    return redirect(url_for("pathways.queue"))


def _schedule_page(pathway, values: dict, *, plans=None, refused=None, conflicts=None):
    zone = territory_zone()
    context = {
        "pathway": pathway,
        "patient": pathway.patient,
        "plans": [series_booking.step_as_dict(p, zone) for p in plans] if plans is not None else None,
        "conflicts": conflicts,
        "problem": refused.detail if refused else None,
        "errors": refused.errors if refused else {},
    }
    status = refused.status if refused else 200
    return render_template("pathways/schedule.html", values=values, **context), status


def _step_booking_page(pathway, step, values, errors=None, *, problem=None, status: int = 200, refusal=None):
    slots = pathways.slots_for_step(db(), step, cpts_id=pathway.cpts_id)
    context = {
        "pathway": pathway,
        "step": step,
        "patient": pathway.patient,
        "slots": slots,
        "slot_options": [(s.id, s) for s in slots],
        "idel_options": [(p.id, p.full_name) for p in board.accompanying_professionals(db(), pathway.cpts_id)],
        "place_options": [(k.value, label) for k, label in PLACE_KIND_LABELS.items()],
        "not_eligible": refusal if isinstance(refusal, eligibility.NotEligible) else None,
        "is_telesoin": step.modality is Modality.TELESOIN,
        "telesoin": telesoin_choices(Profession(step.profession), performer="le ou la professionnel·le de la séance")
        if step.modality is Modality.TELESOIN
        else None,
    }
    return render_template(
        "pathways/book_step.html", values=values, errors=errors or {}, problem=problem, **context
    ), status


@bp.post("/parcours/<int:pathway_id>/arreter")
@access(Permission.PATHWAYS_MANAGE)
def stop(pathway_id: int):
    pathway = pathway_for(db(), current_user, pathway_id, action="pathway.stop")

    def perform(data):
        pathways.stop(db(), current_user, pathway, reason=data["reason"])

    return _record_action(pathway.patient_id, SkipForm(), perform, "Parcours arrêté.")


@bp.route("/patients/<int:patient_id>/eligibilite", methods=["GET", "POST"])
@access(Permission.PATHWAYS_MANAGE)
def eligibility_check(patient_id: int):
    if request.method == "GET":
        return _eligibility_page(patient_for(db(), current_user, patient_id, action="eligibility.read"))
    patient = patient_for(db(), current_user, patient_id, action="eligibility.assess", write=True)
    data, values, errors = load_form(EligibilityForm())
    assessment, refused = attempt(
        lambda: eligibility.assess(db(), current_user, patient, data, zone=territory_zone()),
        form_errors=errors,
        read="eligibility.read",
        target=patient,
    )
    if refused:
        return _eligibility_page(
            patient, values=values, errors=refused.errors, problem=refused.detail, status=refused.status
        )
    assert assessment is not None  # not refused: attempt returned the assessment
    flash(f"Vérification enregistrée : {eligibility.OUTCOME_LABELS[assessment.outcome]}.", "success")
    return redirect(url_for("pathways.eligibility_check", patient_id=patient.id, modality=assessment.modality.value))


def _eligibility_page(patient, *, values=None, errors=None, problem=None, status: int = 200):
    latest = {
        modality: eligibility.latest_assessment(db(), patient, modality) for modality in sorted(eligibility.REMOTE)
    }
    context = {
        "patient": patient,
        "latest": latest,
        "values": values or {"modality": request.args.get("modality", Modality.TELESOIN.value)},
        "errors": errors or {},
        "problem": problem,
        "criteria": eligibility.CRITERIA,
        "care_nature": eligibility.CARE_NATURE,
        "frailty": eligibility.FRAILTY,
        "act_kinds": [(kind, eligibility.ACT_KINDS[kind]) for kind in ACT_KIND_CHOICES],
        "professions": [(p.value, PROFESSION_LABELS[p]) for p in Profession if p is not Profession.COORDINATOR],
        "reasons_of": eligibility.reasons_of,
    }
    return render_template("pathways/eligibility.html", **context), status


def _record_action(patient_id: int, schema, perform, success: str):
    """An action from the patient's record: back to the record, with the confirmation or the refusal (the
    refused change undone, the record's read audited by the record page itself)."""
    data, _values, errors = load_form(schema)
    _, refused = attempt(lambda: perform(data), form_errors=errors)
    if refused:
        details = " ".join(refused.errors.values()) if refused.errors else ""
        flash(f"{refused.detail} {details}".strip(), "danger")
        return redirect(url_for("patients.show", patient_id=patient_id) + "#parcours")
    flash(success, "success")
    return redirect(url_for("patients.show", patient_id=patient_id) + "#parcours")


# --- the admin's pathway templates --------------------------------------------------------------------------

STEP_FIELDS = ("name", "modality", "profession", "interval_days", "condition")
BLANK_ROWS = 2


@bp.get("/admin/parcours")
@access(Permission.PATHWAY_TEMPLATES_MANAGE)
def templates():
    rows = pathways.templates_for(db(), current_user.cpts_id, active_only=False)
    return render_template("pathways/templates.html", templates=rows)


@bp.post("/admin/parcours/copier")
@access(Permission.PATHWAY_TEMPLATES_MANAGE)
def copy_template():
    data, _values, errors = load_form(TemplateCopyForm())

    def perform():
        source = pathways.template_for(db(), current_user.cpts_id, data.pop("source_id"))
        return pathways.copy_template(db(), current_user, source, **data)

    copy, refused = attempt(perform, form_errors=errors)
    if refused:
        flash(" ".join([refused.detail, *refused.errors.values()]), "danger")
        return redirect(url_for("pathways.templates"))
    assert copy is not None  # not refused: attempt returned the copy
    flash("Modèle copié dans la CPTS : vous pouvez modifier ses étapes.", "success")
    return redirect(url_for("pathways.edit_steps", template_id=copy.id))


@bp.route("/admin/parcours/<int:template_id>/etapes", methods=["GET", "POST"])
@access(Permission.PATHWAY_TEMPLATES_MANAGE)
def edit_steps(template_id: int):
    template = pathways.template_for(db(), current_user.cpts_id, template_id)
    if request.method == "GET":
        rows = [{name: getattr(step, name) for name in STEP_FIELDS} for step in template.steps]
        return _steps_page(template, rows)
    rows = _submitted_rows()
    _, refused = attempt(
        lambda: pathways.replace_steps(db(), current_user, template, load(TemplateStepsIn(), {"steps": rows})["steps"])
    )
    if refused:
        return _steps_page(template, rows, errors=refused.errors, problem=refused.detail, status=refused.status)
    flash("Étapes du modèle enregistrées.", "success")
    return redirect(url_for("pathways.edit_steps", template_id=template.id))


def _submitted_rows() -> list[dict]:
    """The rows the page sent (its row_count, bounded: the page never has more than the schema's maximum and
    its blank rows; a longer list is refused by TemplateStepsIn)."""
    rows = []
    sent = request.form.get("row_count", "")
    row_count = int(sent) if sent.isascii() and sent.isdigit() else 0
    for index in range(min(row_count, MAX_TEMPLATE_STEPS + BLANK_ROWS + 1)):
        row = {name: request.form.get(f"steps-{index}-{name}", "").strip() for name in STEP_FIELDS}
        if row["name"]:
            rows.append({name: value for name, value in row.items() if value != ""})
    return rows


def _steps_page(template, rows: list[dict], *, errors=None, problem=None, status: int = 200):
    rows = rows + [{} for _ in range(BLANK_ROWS)]
    context = {
        "template": template,
        "rows": rows,
        "errors": errors or {},
        "problem": problem,
        "modalities": [(m.value, MODALITY_LABELS[m]) for m in Modality],
        "professions": [(p.value, PROFESSION_LABELS[p]) for p in Profession if p is not Profession.COORDINATOR],
    }
    return render_template("pathways/template_steps.html", **context), status
