"""« Liste d'attente » and « Créneaux libérés à proposer »: the coordination puts a patient on a program's waiting
list (from the patient's page or a referral it cannot schedule now), withdraws them, and offers a freed slot to a
waiting patient in one click (workflows.waiting)."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from hub import audit
from hub.auth.guards import patient_for
from hub.auth.permissions import Permission
from hub.auth.policies import referral_for
from hub.db import utcnow
from hub.errors import HubError
from hub.http.access import access
from hub.http.forms import attempt, form_data, load_form
from hub.http.request import db, upload_dir
from hub.http.waiting import add_entry
from hub.models import PLACE_KIND_LABELS, WAITING_URGENCY_LABELS, PlaceKind, WaitingUrgency
from hub.schemas.base import load
from hub.schemas.waiting import OfferForm, WaitingForm, WaitingListArgs, WithdrawForm
from hub.web.pages import submit
from workflows import programs, referrals, waiting

bp = Blueprint("waiting", __name__)
LIST_LIMIT = 200  # entries the page shows; it says how many more wait


@bp.context_processor
def labels():
    return {
        "WAITING_URGENCY_LABELS": WAITING_URGENCY_LABELS,
        "PLACE_KIND_LABELS": PLACE_KIND_LABELS,
        "NEEDS": referrals.NEEDS,
        "WEEKDAYS": waiting.WEEKDAYS,
        "weekdays_of": waiting.weekdays_of,
        "needs_of": waiting.needs_of,
        "waited_days": lambda entry: waiting.waited_days(entry, now=utcnow()),
    }


@bp.get("/waiting-list")
@access(Permission.APPOINTMENTS_BOOK)
def index():
    args = load(WaitingListArgs(), {k: v for k, v in request.args.items() if k == "program_id"})
    program_id = args["program_id"]
    program = programs.get_program(db(), program_id, cpts_id=current_user.cpts_id) if program_id else None
    audit.record(db(), actor=current_user, action="waiting.list", details={"program_id": program_id})
    return _list_page(program)


def _list_page(program, *, withdrawing=None, errors=None, status=200):
    program_id = program.id if program else None
    entries, total = waiting.waiting_list(db(), current_user.cpts_id, program_id=program_id, limit=LIST_LIMIT)
    queues = waiting.queues(db(), current_user.cpts_id)
    context = {"entries": entries, "total": total, "program": program, "queues": queues, "withdrawing": withdrawing}
    return render_template("waiting/index.html", errors=errors or {}, **context), status


@bp.route("/waiting-list/new", methods=["GET", "POST"])
@access(Permission.APPOINTMENTS_BOOK)
def new():
    """From the patient's page (?patient_id=) or a referral's (?referral_id=): the program, the urgency and what a
    slot must fit."""
    if request.method == "GET":
        values = {key: request.args.get(key, "") for key in ("patient_id", "referral_id")}
        return _new_page(values)
    raw = form_data()
    for key in ("weekdays", "needs"):
        raw[key] = request.form.getlist(key)
    entry, errors, problem = _submit(raw)
    if entry is None:
        return _new_page(raw, errors, problem=problem, status=422 if errors else 409)
    flash(f"{entry.patient.display_name} est en liste d'attente : {entry.program.name}.", "success")
    return redirect(url_for("waiting.index", program_id=entry.program_id))


def _submit(raw: dict):
    """(the entry, {}, None), or (None, errors by field, the refusal's message when it names no field)."""
    try:
        data = load(WaitingForm(), raw)
    except HubError as exc:
        return None, exc.errors, None
    entry, refused = attempt(lambda: add_entry(data))
    if refused is not None:
        return None, refused.errors, None if refused.errors else refused.detail
    return entry, {}, None


def _new_page(values: dict, errors=None, *, problem: str | None = None, status=200):
    referral = patient = None
    if str(values.get("referral_id") or "").isdigit():
        referral = referral_for(db(), current_user, int(values["referral_id"]), "read")
        patient = referral.patient
    elif str(values.get("patient_id") or "").isdigit():
        patient = patient_for(db(), current_user, int(values["patient_id"]))
    if referral is not None and not values.get("urgency"):
        values = values | {
            "urgency": waiting.FROM_REFERRAL[referral.urgency].value,
            "needs": referrals.needs_of(referral),
            "program_id": referral.target_program_id,
        }
    context = {
        "patient": patient,
        "referral": referral,
        "program_options": [(p.id, p.name) for p in programs.list_programs(db(), current_user.cpts_id) if p.is_active],
        "urgency_options": [(u.value, WAITING_URGENCY_LABELS[u]) for u in WaitingUrgency],
        "place_options": [(p.value, PLACE_KIND_LABELS[p]) for p in PlaceKind],
    }
    page = render_template("waiting/new.html", values=values, errors=errors or {}, problem=problem, **context)
    return page, status


@bp.post("/waiting-list/<int:entry_id>/withdraw")
@access(Permission.APPOINTMENTS_BOOK)
def withdraw(entry_id: int):
    entry = waiting.get_entry(db(), entry_id, cpts_id=current_user.cpts_id, action="withdraw")
    done, _values, errors = submit(
        WithdrawForm(), lambda data: waiting.withdraw(db(), current_user, entry, reason=data["reason"])
    )
    if done is None:
        return _list_page(None, withdrawing=entry.id, errors=errors, status=422)
    flash(f"{entry.patient.display_name} a quitté la liste d'attente.", "success")
    return redirect(url_for("waiting.index"))


@bp.get("/freed-slots")
@access(Permission.APPOINTMENTS_BOOK)
def freed_slots():
    audit.record(db(), actor=current_user, action="freed_slot.list")
    return _freed_page()


def _freed_page(*, problem: str | None = None, status: int = 200):
    tasks = waiting.open_tasks(db(), current_user.cpts_id, now=utcnow())
    return render_template("waiting/freed.html", tasks=tasks, problem=problem), status


@bp.post("/freed-slots/<int:task_id>/offer")
@access(Permission.APPOINTMENTS_BOOK)
def offer(task_id: int):
    """One click from the desk: the waiting patient is booked into the freed slot, or the page says why not."""
    task = waiting.get_task(db(), task_id, cpts_id=current_user.cpts_id)
    data, _values, errors = load_form(OfferForm())

    def perform():
        entry = waiting.get_entry(db(), data["entry_id"], cpts_id=current_user.cpts_id, action="offer")
        return waiting.offer(db(), current_user, task, entry, upload_dir=upload_dir())

    appointment, refused = attempt(perform, form_errors=errors, read="freed_slot.list")
    if refused is not None:
        return _freed_page(problem=refused.detail, status=refused.status)
    assert appointment is not None  # not refused: attempt returned the booking
    flash(f"Créneau proposé à {appointment.patient.display_name} : rendez-vous pris.", "success")
    return redirect(url_for("planning.appointment", appointment_id=appointment.id))
