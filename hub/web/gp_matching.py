"""« Patients sans médecin traitant »: the coordination's list triaged by fragility, an entry's page (proposals to
GPs, withdrawal), and the GP's side: answering a proposal from the desk, declaring capacity."""

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from hub.auth.guards import patient_for
from hub.auth.permissions import Permission
from hub.auth.policies import visible_patients
from hub.db import utcnow
from hub.http.access import access
from hub.http.forms import attempt, load_form
from hub.http.request import db, territory_zone
from hub.models import (
    CHRONIC_CONDITIONS,
    CONSENT_METHOD_LABELS,
    GP_PROPOSAL_STATE_LABELS,
    GP_SEARCH_STATE_LABELS,
    GpSearch,
    GpSearchState,
    Patient,
    Professional,
)
from hub.schemas.gp_matching import CapacityForm, GpSearchForm, ProposeForm, RefuseForm, WithdrawForm
from hub.web.pages import submit
from workflows import gp_matching

bp = Blueprint("gp_matching", __name__, url_prefix="/patients-sans-medecin")
PATIENT_CHOICES = 200  # the patients offered in the entry form's list, by name


def _today():
    return gp_matching.today_in(territory_zone(), utcnow())


@bp.get("")
@access(Permission.GP_SEARCHES_MANAGE)
def index():
    return _list_page()


@bp.post("")
@access(Permission.GP_SEARCHES_MANAGE)
def create():
    def enter(data: dict):
        patient = patient_for(db(), current_user, data["patient_id"])
        return gp_matching.enter(db(), current_user, patient, data, now=utcnow())

    data, values, errors = load_form(GpSearchForm())
    search, refusal = attempt(lambda: enter(data), form_errors=errors)  # the list shown again audits its read
    if refusal is not None:
        return _list_page(values, refusal.errors or {"patient_id": refusal.detail}, status=refusal.status)
    assert search is not None
    flash("Patient inscrit sur la liste : proposez-le à un médecin.", "success")
    return redirect(url_for("gp_matching.show", search_id=search.id))


def _list_page(values: dict | None = None, errors: dict | None = None, *, status: int = 200):
    rows = gp_matching.waiting_list(db(), current_user, today=_today())
    context = {
        "rows": rows,
        "counts": gp_matching.counts_by_priority(rows),
        "next_actions": {search.id: gp_matching.next_action(search) for search, _fragility in rows},
        "patient_options": [
            (p.id, f"{p.display_name} — né·e le {p.birth_date:%d/%m/%Y}") for p in _patients_without_gp()
        ],
        "consent_options": [(method.value, label) for method, label in CONSENT_METHOD_LABELS.items()],
        "values": values or {},
        "errors": errors or {},
    }
    return render_template("gp_matching/index.html", **_labels(), **context), status


def _patients_without_gp() -> list[Patient]:
    """The patients of the CPTS without a médecin traitant who do not already wait on the list, by name."""
    waiting = select(GpSearch.patient_id).where(GpSearch.state == GpSearchState.WAITING)
    return list(
        db().scalars(
            select(Patient)
            .where(visible_patients(current_user), Patient.attending_gp_id.is_(None), Patient.id.not_in(waiting))
            .order_by(Patient.birth_name, Patient.first_birth_given_name, Patient.id)
            .limit(PATIENT_CHOICES)
        )
    )


@bp.get("/<int:search_id>")
@access(Permission.GP_SEARCHES_MANAGE)
def show(search_id: int):
    return _entry_page(gp_matching.search_for(db(), current_user, search_id))


@bp.post("/<int:search_id>/proposer")
@access(Permission.GP_SEARCHES_MANAGE)
def propose(search_id: int):
    def perform(search, data):
        gp = db().get(Professional, data["gp_id"])
        gp_matching.propose(db(), current_user, search, gp, now=utcnow())
        return f"Patient proposé à {gp.full_name if gp else ''} : il répond depuis son bureau."

    return _entry_action(search_id, "gp_search.propose", ProposeForm(), perform)


@bp.post("/<int:search_id>/retirer")
@access(Permission.GP_SEARCHES_MANAGE)
def withdraw(search_id: int):
    def perform(search, data):
        gp_matching.close(db(), current_user, search, outcome=data["outcome"], reason=data["reason"], now=utcnow())
        return "Patient retiré de la liste ; le retrait est tracé."

    return _entry_action(search_id, "gp_search.close", WithdrawForm(), perform)


def _entry_action(search_id: int, action: str, schema, perform):
    search = gp_matching.search_for(db(), current_user, search_id, action=action)
    data, values, errors = load_form(schema)
    message, refusal = attempt(lambda: perform(search, data), form_errors=errors, read="gp_search.read", target=search)
    if refusal is not None:
        return _entry_page(search, values, refusal.errors, problem=refusal.detail, status=refusal.status)
    assert message is not None  # not refused: attempt returned perform's message
    flash(message, "success")
    return redirect(url_for("gp_matching.show", search_id=search_id))


def _entry_page(search, values=None, errors=None, *, problem=None, status: int = 200):
    is_waiting = search.state is GpSearchState.WAITING  # proposing and withdrawing are for a waiting patient only
    context = {
        "search": search,
        "is_waiting": is_waiting,
        "fragility": gp_matching.fragility(search, _today()),
        "matching": gp_matching.matching_gps(db(), search) if is_waiting else [],
        "next_action": gp_matching.next_action(search),
        "values": values or {},
        "errors": errors or {},
        "problem": problem,
    }
    return render_template("gp_matching/show.html", **_labels(), **context), status


def _labels() -> dict:
    return {
        "PURPOSE": gp_matching.PURPOSE,
        "PRIORITY_LABELS": gp_matching.PRIORITY_LABELS,
        "CHRONIC_CONDITIONS": CHRONIC_CONDITIONS,
        "CONSENT_METHOD_LABELS": CONSENT_METHOD_LABELS,
        "GP_SEARCH_STATE_LABELS": GP_SEARCH_STATE_LABELS,
        "GP_PROPOSAL_STATE_LABELS": GP_PROPOSAL_STATE_LABELS,
    }


# --- the GP's side ---------------------------------------------------------------------------------------


@bp.post("/propositions/<int:proposal_id>/accepter")
@access(Permission.GP_PROPOSALS_ANSWER)
def accept(proposal_id: int):
    proposal = gp_matching.proposal_for(db(), current_user, proposal_id)
    _done, refusal = attempt(lambda: gp_matching.accept(db(), current_user, proposal, now=utcnow()))
    if refusal is not None:
        flash(refusal.detail or "", "danger")
        return redirect(url_for("home.index") + "#patients-proposes"), 303
    flash(f"Vous êtes le médecin traitant de {proposal.search.patient.display_name}.", "success")
    return redirect(url_for("home.index") + "#patients-proposes")


@bp.post("/propositions/<int:proposal_id>/refuser")
@access(Permission.GP_PROPOSALS_ANSWER)
def refuse(proposal_id: int):
    proposal = gp_matching.proposal_for(db(), current_user, proposal_id)

    def perform(data: dict) -> bool:
        gp_matching.refuse(db(), current_user, proposal, reason=data["reason"], now=utcnow())
        return True

    done, _values, errors = submit(RefuseForm(), perform)
    if not done:
        flash(errors.get("reason", "Refus impossible."), "danger")
        return redirect(url_for("home.index") + "#patients-proposes"), 303
    flash("Refus transmis à la coordination.", "success")
    return redirect(url_for("home.index") + "#patients-proposes")


@bp.get("/capacite")
@access(Permission.GP_PROPOSALS_ANSWER)
def capacity_form():
    gp = gp_matching.own_gp(current_user)
    return _capacity_page({"capacity": gp.new_patient_capacity})


@bp.post("/capacite")
@access(Permission.GP_PROPOSALS_ANSWER)
def save_capacity():
    gp = gp_matching.own_gp(current_user)

    def perform(data: dict) -> bool:
        gp_matching.set_capacity(db(), current_user, gp, data["capacity"])
        return True

    done, values, errors = submit(CapacityForm(), perform)
    if not done:
        return _capacity_page(values, errors, status=422)
    flash(f"Vous acceptez {gp.new_patient_capacity} nouveau(x) patient(s) médecin traitant.", "success")
    return redirect(url_for("home.index"))


def _capacity_page(values: dict, errors: dict | None = None, *, status: int = 200):
    return render_template("gp_matching/capacity.html", values=values, errors=errors or {}), status
