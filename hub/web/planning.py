"""The coordinator's planning: session programs (creation, series edits, occurrences, closures, stopping the
series), the week planner, booking a patient into a slot, and an appointment's page (reassign the IDEL, cancel)."""

import datetime as dt
import functools
from collections import defaultdict
from zoneinfo import ZoneInfo

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from hub import audit
from hub.auth.guards import patient_for
from hub.auth.permissions import Permission
from hub.auth.policies import appointment_for, visible_patients
from hub.db import utcnow
from hub.errors import NotFound, ValidationFailed
from hub.formatting import DAYS, french_date, percent
from hub.http.access import access, light_page
from hub.http.forms import attempt, load_form, undo_refused_change
from hub.http.request import db, territory_zone
from hub.models import (
    PLACE_KIND_LABELS,
    PROGRAM_DEFAULTS,
    PROGRAM_KIND_LABELS,
    AppointmentKind,
    Professional,
    ProgramKind,
    Slot,
    appointment_state_label,
)
from hub.schemas.scheduling import (
    RULE_CHOICES,
    SERIES_FORM_EXCLUDE,
    WEEKDAY_LABELS,
    AppointmentForm,
    ClosureForm,
    OccurrenceCancelForm,
    OccurrenceMoveForm,
    PlanningWeekArgs,
    ProgramForm,
    ReasonForm,
    ReassignForm,
    SeriesBookingForm,
    SeriesForm,
    choice_from_rule,
)
from hub.services import directory, identity, resources
from hub.web.pages import appointment_action, load_query, row_url, telesoin_choices
from scheduling import board, slots
from scheduling.agenda import week_bounds
from workflows import accompaniment, appointments, eligibility, fees, programs, series_booking, waiting

bp = Blueprint("planning", __name__, url_prefix="/planning")

STATE_STYLES = {
    "free": "text-bg-light border",
    "cancelled": "text-bg-secondary",
    "proposed": "text-bg-warning",
    "confirmed": "text-bg-success",
    "checked_in": "text-bg-info",
    "done": "text-bg-primary",
    "declined": "text-bg-danger",
    "no_show": "text-bg-dark",
    "degraded": "text-bg-secondary",
    "postponed": "text-bg-danger",
}
PROGRAM_FIELDS = (
    "name",
    "organisation_id",
    "room_id",
    "kit_id",
    "slot_count",
    "slot_minutes",
    "slot_interval_minutes",
    "accompaniment_before_minutes",
    "accompaniment_after_minutes",
    "skip_public_holidays",
    "own_idel_delay_minutes",
    "horizon_weeks",
    "report_delay_doctors_hours",
    "report_delay_patient_hours",
    "valid_until",
    "video_url_template",
)
PATIENT_CHOICES = 50
# Made once, as hub.api.candidates' schema: making a schema cost more than loading the one date it reads, on the
# load's largest page; loading keeps no state in it.
WEEK_ARGS = PlanningWeekArgs()


def zone() -> ZoneInfo:
    return ZoneInfo(territory_zone())


def time_fr(value: dt.datetime, *, tz: ZoneInfo) -> str:
    """`14 h 05` in the territory's wall time."""
    local = value.astimezone(tz)
    return f"{local.hour} h {local.minute:02d}"


def local_day(value: dt.datetime, *, tz: ZoneInfo) -> dt.date:
    return value.astimezone(tz).date()


@bp.record_once
def wall_time_filters(state) -> None:
    """`time_fr` and `local_day` in the templates, with the zone read once (the configuration is read-only after
    start): a week's agenda formats a hundred times, and reading the zone through `current_app` each time cost
    more than the formatting."""
    tz = ZoneInfo(state.app.config["HUB"]["TIMEZONE"])
    state.app.add_template_filter(functools.partial(time_fr, tz=tz), "time_fr")
    state.app.add_template_filter(functools.partial(local_day, tz=tz), "local_day")


@bp.app_template_filter("day_fr")
def day_fr(value: dt.date) -> str:
    """`lundi 23 novembre 2026`."""
    return f"{DAYS[value.weekday()]} {french_date(value)}"


@bp.context_processor
def labels():
    return {
        "PROGRAM_KIND_LABELS": PROGRAM_KIND_LABELS,
        "PLACE_KIND_LABELS": PLACE_KIND_LABELS,
        "SLOT_STATE_LABELS": board.SLOT_STATE_LABELS,
        "STATE_STYLES": STATE_STYLES,
        "RULE_CHOICES": RULE_CHOICES,
        "WEEKDAY_LABELS": WEEKDAY_LABELS,
        "state_label": appointment_state_label,
    }


# --- the week planner -------------------------------------------------------------------------------------


@bp.get("")
@access(Permission.PROGRAMS_MANAGE)
@light_page
def week():
    filters, values, errors = load_query(WEEK_ARGS)
    day = filters.get("week") or utcnow().astimezone(zone()).date()
    monday = day - dt.timedelta(days=day.weekday())
    start, end = week_bounds(monday, zone().key)
    days = [monday + dt.timedelta(days=n) for n in range(7)]
    week_board = board.week_board(db(), current_user.cpts_id, days, start, end, zone=zone())
    details = {"week": monday.isoformat(), "appointments": week_board.appointment_count}
    audit.record(db(), actor=current_user, action="planning.week", details=details)
    context = {"board": week_board, "monday": monday, "step": dt.timedelta(days=7), "now": utcnow()}
    urls = {
        "appointment_url": row_url("planning.appointment", "appointment_id"),
        "book_url": row_url("planning.book", "slot_id"),
        "program_url": row_url("planning.program", "program_id"),
    }
    return render_template("planning/week.html", values=values, errors=errors, **context, **urls)


# --- programs ---------------------------------------------------------------------------------------------


@bp.get("/programs")
@access(Permission.PROGRAMS_MANAGE)
def program_list():
    rows = programs.list_programs(db(), current_user.cpts_id)
    described = [(program, programs.describe_program(program)) for program in rows]
    return render_template("planning/programs.html", programs=described)


@bp.route("/programs/new", methods=["GET", "POST"])
@access(Permission.PROGRAMS_MANAGE)
def new_program():
    if request.method == "GET":
        return _program_form("planning/program_new.html", {"rule": "weekly", "weekday": "MO"} | PROGRAM_DEFAULTS)
    data, values, errors = load_form(ProgramForm())
    program, refused = attempt(
        lambda: programs.create_program(db(), current_user, data, zone=territory_zone()),
        form_errors=errors,
        refusals=ValidationFailed,
    )
    if refused:
        return _program_form("planning/program_new.html", values, refused.errors, status=422)
    assert program is not None  # not refused: attempt returned the program
    flash(f"Programme créé : {programs.describe_program(program)}.", "success")
    return redirect(url_for("planning.program", program_id=program.id))


@bp.get("/programs/<int:program_id>")
@access(Permission.PROGRAMS_MANAGE)
def program(program_id: int):
    return _program_page(_program(program_id))


@bp.route("/programs/<int:program_id>/edit", methods=["GET", "POST"])
@access(Permission.PROGRAMS_MANAGE)
def edit_program(program_id: int):
    program = _program(program_id)
    if request.method == "GET":
        from_day = request.args.get("from_day", "")
        values = _current_values(program) | {"scope": "following" if from_day else "series", "from_day": from_day}
        return _program_form("planning/program_edit.html", values, program=program)
    data, values, errors = load_form(SeriesForm(exclude=SERIES_FORM_EXCLUDE))
    changed, refused = attempt(lambda: _change_series(program, data), form_errors=errors, refusals=ValidationFailed)
    if refused:
        return _program_form("planning/program_edit.html", values, refused.errors, status=422, program=program)
    assert changed is not None  # not refused: attempt returned the program and the slots' report
    target, report = changed
    flash(_report_message(report), "warning" if report.booked_no_longer_fitting else "success")
    return redirect(url_for("planning.program", program_id=target.id))


@bp.post("/programs/<int:program_id>/occurrences/cancel")
@access(Permission.PROGRAMS_MANAGE)
def cancel_occurrence(program_id: int):
    program = _program(program_id)

    def perform(data):
        cancelled = programs.cancel_occurrence(
            db(), current_user, program, occurrence_start=data["occurrence"], reason=data["reason"]
        )
        return f"Séance annulée ; {cancelled} rendez-vous annulé(s), les personnes concernées sont prévenues."

    return _occurrence_action(program, "cancel", OccurrenceCancelForm(), perform)


@bp.post("/programs/<int:program_id>/occurrences/move")
@access(Permission.PROGRAMS_MANAGE)
def move_occurrence(program_id: int):
    program = _program(program_id)

    def perform(data):
        new_start_local = dt.datetime.combine(data["new_day"], data["new_time"])
        programs.move_occurrence(
            db(), current_user, program, occurrence_start=data["occurrence"], new_start_local=new_start_local
        )
        return "Séance déplacée."

    return _occurrence_action(program, "move", OccurrenceMoveForm(), perform, renamed={"new_start": "new_day"})


@bp.post("/programs/<int:program_id>/closures")
@access(Permission.PROGRAMS_MANAGE)
def add_closure(program_id: int):
    program = _program(program_id)

    def perform(data):
        report = programs.add_closure(
            db(),
            current_user,
            program,
            first_day=data["first_day"],
            last_day=data["last_day"],
            reason=data.get("reason"),
        )
        return f"Fermeture enregistrée. {_report_message(report)}"

    return _occurrence_action(program, "closure", ClosureForm(), perform)


@bp.post("/programs/<int:program_id>/cancel")
@access(Permission.PROGRAMS_MANAGE)
def cancel_series(program_id: int):
    program = _program(program_id)

    def perform(data):
        cancelled = programs.cancel_series(db(), current_user, program, reason=data["reason"])
        return f"Série arrêtée ; {cancelled} rendez-vous annulé(s), les personnes concernées sont prévenues."

    return _occurrence_action(program, "stop", ReasonForm(), perform)


def _program(program_id: int):
    return programs.get_program(db(), program_id, cpts_id=current_user.cpts_id)


def _program_form(template: str, values: dict, errors=None, *, status: int = 200, **context):
    cpts_id = current_user.cpts_id
    performers = [(p.id, f"{p.full_name} — {p.profession_label}") for p in directory.active_clinicians(db(), cpts_id)]
    options = {
        "kind_options": [(k.value, label) for k, label in PROGRAM_KIND_LABELS.items()],
        "performer_options": performers,
        "organisation_options": [(o.id, o.name) for o in directory.all_organisations(db(), cpts_id)],
        "room_options": _resource_options(cpts_id, "room_id", context.get("program")),
        "kit_options": _resource_options(cpts_id, "kit_id", context.get("program")),
        "rule_options": list(RULE_CHOICES.items()),
        "weekday_options": list(WEEKDAY_LABELS.items()),
    }
    return render_template(template, values=values, errors=errors or {}, **options, **context), status


def _resource_options(cpts_id: int, field: str, program) -> list[tuple[int, str]]:
    """The resources in service a program may be assigned as its place or kit; a program's own, retired since,
    is kept so that saving the form unchanged does not take it away unnoticed."""
    rows = resources.assignable(db(), cpts_id, field)
    current = getattr(program, field.removesuffix("_id"), None) if program is not None else None
    if current is not None and not current.is_active:
        rows.append(current)
    return [(r.id, f"{r.name} — {r.kind_label}{'' if r.is_active else ' (retiré)'}") for r in rows]


def _current_values(program) -> dict:
    values = {name: getattr(program, name) for name in PROGRAM_FIELDS}
    values["time_of_day"] = program.start_local.strftime("%H:%M")
    return values | choice_from_rule(program.rrule)


def _change_series(program, data: dict):
    """The whole series, or this occurrence and the following ones: only the fields that changed are sent."""
    scope, from_day = data.pop("scope"), data.pop("from_day", None)
    current = _current_values(program) | {"rrule": program.rrule, "time_of_day": program.start_local.time()}
    changes = {key: value for key, value in data.items() if current.get(key) != value}
    if scope == "series":
        return program, programs.update_series(db(), current_user, program, changes)
    return programs.split_series(db(), current_user, program, from_day=from_day, changes=changes)


def _report_message(report) -> str:
    message = f"Créneaux : {report.created} créé(s), {report.removed} retiré(s)."
    if report.booked_no_longer_fitting:
        message += (
            f" {len(report.booked_no_longer_fitting)} créneau(x) réservé(s) ne correspondent plus à la série : "
            "déplacez ou annulez leurs rendez-vous."
        )
    return message


def _program_page(program, *, form=None, values=None, errors=None, problem=None, status: int = 200):
    now = utcnow()
    views, _total = board.program_slots(db(), program.id, now, now + dt.timedelta(weeks=program.horizon_weeks))
    occurrences = defaultdict(list)
    for view in views:
        occurrences[view.slot.occurrence_start].append(view)
    audit.record(db(), actor=current_user, action="planning.program", target=program, details={"slots": len(views)})
    context = {"form": form, "values": values or {}, "errors": errors or {}, "problem": problem}
    context["bookings_to_cancel"] = programs.bookings_to_cancel(db(), program, now=now) if program.is_active else 0
    description = programs.describe_program(program)
    return render_template(
        "planning/program.html", program=program, description=description, occurrences=occurrences, **context
    ), status


def _occurrence_action(program, form: str, schema, perform, *, renamed=None):
    """A form of the program page: Post/Redirect/Get when done, else the page again with the form's errors."""
    data, values, errors = load_form(schema)
    message, refused = attempt(lambda: perform(data), form_errors=errors, read="planning.program", target=program)
    if refused:
        errors = {(renamed or {}).get(key, key): text for key, text in refused.errors.items()}
        form_id = f"{form}-{values.get('occurrence', '')}"
        page = {"form": form_id, "values": values, "errors": errors, "problem": refused.detail}
        return _program_page(program, **page, status=refused.status)
    assert message is not None  # not refused: attempt returned perform's message
    flash(message, "success")
    return redirect(url_for("planning.program", program_id=program.id))


# --- booking ----------------------------------------------------------------------------------------------


@bp.route("/slots/<int:slot_id>/book", methods=["GET", "POST"])
@access(Permission.APPOINTMENTS_BOOK)
def book(slot_id: int):
    if request.method == "GET":
        slot = _slot(slot_id)
        values: dict[str, str | int] = {"place_kind": appointments.default_place(slot.program).value}
        # « À reprogrammer » books the same patient again in one click: the patient comes chosen (by id, never
        # a name in the URL).
        chosen = request.args.get("patient_id", type=int)
        if chosen is not None:
            values["patient_id"] = chosen
            return _booking_page(slot, values, chosen=patient_for(db(), current_user, chosen))
        return _booking_page(slot, values)
    data, values, errors = load_form(AppointmentForm())
    if errors:
        slot = _slot(slot_id)
        undo_refused_change("patient.search")
        return _refused_booking(slot, values, ValidationFailed(errors))
    # The API's one read and checks (the slot's 404 first, as on every page of the slot), then book()'s rules.
    inputs = appointments.requested_booking(
        db(), current_user, slot_id=slot_id, patient_id=data["patient_id"], slot_first=True
    )
    appointment, refused = attempt(lambda: _book(inputs, data), read="patient.search")
    if refused:
        assert inputs.slot is not None  # requested_booking refused a missing slot
        return _refused_booking(inputs.slot, values, refused)
    assert appointment is not None  # not refused: attempt returned the appointment
    flash(_booked_message(appointment), "success")
    for warning in appointments.booking_warnings(db(), appointment):
        flash(warning, "warning")
    monday = appointment.starts_at.astimezone(zone()).date()
    return redirect(url_for("planning.week", week=monday.isoformat()))


def _refused_booking(slot, values: dict, refused):
    return _booking_page(slot, values, refused.errors, problem=refused.detail, status=refused.status, refusal=refused)


def _booked_message(appointment) -> str:
    if appointment.kind is AppointmentKind.TELESOIN:
        act = appointment.telesoin_act_label
        return f"Séance de télésoin réservée : {act}." if act else "Séance de télésoin réservée."
    idel = appointment.accompanying.full_name if appointment.accompanying else None
    return f"Rendez-vous proposé à {idel}." if idel else "Rendez-vous réservé, sans IDEL pour l'instant."


def _book(inputs, data: dict):
    return appointments.book_requested(
        db(),
        current_user,
        inputs,
        place_kind=data["place_kind"],
        accompanying_id=data.get("accompanying_id") or None,  # the form's 0 or empty choice: nobody named
        telesoin=appointments.TelesoinAct.from_booking(data),
    )


def _accompanying_options(program) -> list[tuple[int, str]]:
    helpers = board.accompanying_professionals(db(), program.cpts_id, program=program)
    return [(p.id, p.full_name) for p in helpers]


def _ranking(appointment, program) -> accompaniment.Suggestions | None:
    """The free IDELs ranked for the visit, to reassign it: only while it may be."""
    if program.is_at_pharmacy or "reassign" not in appointments.MACHINE.allowed_verbs(appointment.state):
        return None
    return accompaniment.for_appointment(db(), appointment, now=utcnow())


def _slot(slot_id: int) -> Slot:
    slot = slots.slot_with_program(db(), slot_id)
    if slot is None or slot.program.cpts_id != current_user.cpts_id:
        raise NotFound("Créneau introuvable.")
    return slot


def _booking_page(slot, values: dict, errors=None, *, problem=None, status: int = 200, refusal=None, chosen=None):
    query = request.args.get("q", "").strip()[:100]
    patients, total = identity.search_patients(
        db(), visible_patients(current_user), text=query or None, per_page=PATIENT_CHOICES
    )
    if chosen is not None and chosen not in patients:
        patients, total = [chosen, *patients], total + 1
    audit.record(db(), actor=current_user, action="patient.search", details={"results": len(patients)})
    is_telesoin, performer = slot.program.kind is ProgramKind.TELESOIN, slot.program.performer
    context = {
        "slot": slot,
        "view": board.views_of(db(), [slot])[0],
        "query": query,
        "patients": patients,
        "total": total,
        "idel_options": _accompanying_options(slot.program),
        "place_options": [(k.value, label) for k, label in PLACE_KIND_LABELS.items()],
        "not_eligible": refusal if isinstance(refusal, eligibility.NotEligible) else None,
        "is_telesoin": is_telesoin,
        "telesoin": telesoin_choices(performer.profession, performer=performer.full_name) if is_telesoin else None,
        # Only when the 20 % share refused the booking (or a reason was already typed): a coordinator may then
        # book past it with a reason.
        "ask_override": bool(
            (refusal is not None and "remote_share" in getattr(refusal, "extra", {}))
            or values.get("remote_share_override_reason")
        ),
        "override_label": f"Motif de dérogation au plafond de {percent(fees.REMOTE_SHARE_LIMIT, places=0)}",
    }
    return render_template("planning/book.html", values=values, errors=errors or {}, problem=problem, **context), status


# --- a series: every occurrence checked before anything is saved --------------------------------------------

SERIES_RHYTHMS = [(1, "Chaque séance"), (2, "Une séance sur deux"), (3, "Une séance sur trois"), (4, "Une sur quatre")]


@bp.route("/slots/<int:slot_id>/series", methods=["GET", "POST"])
@access(Permission.APPOINTMENTS_BOOK)
def series(slot_id: int):
    """« Réserver une série »: the coordinator checks the occurrences (conflicts flagged, nothing saved), then
    books the free ones, or all of them or nothing."""
    slot = _slot(slot_id)
    if request.method == "GET":
        return _series_page(
            slot, {"every": 1, "count": 6, "place_kind": appointments.default_place(slot.program).value}
        )
    data, values, errors = load_form(SeriesBookingForm())
    if data.get("action") == "book" and not errors:
        done, refused = attempt(
            lambda: series_booking.book(
                db(), current_user, _series_of(slot, data), all_or_nothing=data["all_or_nothing"]
            ),
            read="patient.search",
        )
        if not refused:
            assert done is not None  # not refused: attempt returned the booked and the left out
            booked, left_out = done
            flash(
                f"{len(booked)} séance{'s' if len(booked) > 1 else ''} réservée{'s' if len(booked) > 1 else ''}.",
                "success",
            )
            for occurrence in left_out:
                flash(f"Non réservée — {series_booking.describe(occurrence, slot.program.zone)}.", "warning")
            return redirect(url_for("planning.week", week=slot.starts_at.astimezone(zone()).date().isoformat()))
        assert refused is not None
        planned = refused.extra.get("occurrences")
        return _series_page(
            slot, values, refused.errors, problem=refused.detail, conflicts=planned, status=refused.status
        )
    planned, refused = attempt(
        lambda: series_booking.check(db(), _series_of(slot, data)), form_errors=errors, read="patient.search"
    )
    if refused:
        return _series_page(slot, values, refused.errors, problem=refused.detail, status=refused.status)
    assert planned is not None  # not refused: attempt returned the occurrences
    return _series_page(slot, values, planned=[series_booking.as_dict(o, slot.program.zone) for o in planned])


def _series_of(slot, data: dict) -> series_booking.Series:
    patient = patient_for(db(), current_user, data["patient_id"], action="appointment.series_check", write=True)
    return series_booking.Series.asked(db(), first_slot=slot, patient=patient, data=data)


def _telesoin_choices(program) -> dict | None:
    if program.kind is not ProgramKind.TELESOIN:
        return None
    return telesoin_choices(program.performer.profession, performer=program.performer.full_name)


def _series_page(slot, values: dict, errors=None, *, problem=None, planned=None, conflicts=None, status: int = 200):
    query = request.args.get("q", "").strip()[:100]
    patients, total = identity.search_patients(
        db(), visible_patients(current_user), text=query or None, per_page=PATIENT_CHOICES
    )
    audit.record(db(), actor=current_user, action="patient.search", details={"results": len(patients)})
    context = {
        "slot": slot,
        "query": query,
        "patients": patients,
        "total": total,
        "planned": planned,
        "conflicts": conflicts,
        "rhythm_options": SERIES_RHYTHMS,
        "idel_options": _accompanying_options(slot.program),
        "place_options": [(k.value, label) for k, label in PLACE_KIND_LABELS.items()],
        "is_assisted": slot.program.appointment_kind is AppointmentKind.ASSISTED_TELECONSULTATION,
        # A télésoin series states its act once, for each of its sessions.
        "telesoin": _telesoin_choices(slot.program),
    }
    page = render_template("planning/series.html", values=values, errors=errors or {}, problem=problem, **context)
    return page, status


# --- an appointment: reassign the IDEL, cancel --------------------------------------------------------------


@bp.get("/appointments/<int:appointment_id>")
@access(Permission.APPOINTMENTS_BOOK)
def appointment(appointment_id: int):
    return _appointment_page(appointment_for(db(), current_user, appointment_id, "read"))


@bp.post("/appointments/<int:appointment_id>/reassign")
@access(Permission.APPOINTMENTS_BOOK)
def reassign(appointment_id: int):
    def perform(appointment, data):
        idel = db().get(Professional, data["accompanying_id"])
        if idel is None:
            raise ValidationFailed({"accompanying_id": "Professionnel inconnu dans la CPTS."})
        appointments.reassign(db(), current_user, appointment, idel=idel)
        return f"Visite proposée à {idel.full_name}."

    return _appointment_action(appointment_id, "reassign", ReassignForm(), perform)


@bp.post("/appointments/<int:appointment_id>/cancel")
@access(Permission.APPOINTMENTS_BOOK)
def cancel(appointment_id: int):
    def perform(appointment, data):
        appointments.cancel(db(), current_user, appointment, reason=data["reason"])
        if appointment.slot_id is not None and waiting.has_open_task(db(), appointment.slot_id):
            return (
                "Rendez-vous annulé ; les personnes concernées sont prévenues. Des patients attendent ce "
                "programme : le créneau libéré est à leur proposer depuis l'accueil."
            )
        return "Rendez-vous annulé ; les personnes concernées sont prévenues."

    return _appointment_action(appointment_id, "cancel", ReasonForm(), perform)


def _appointment_action(appointment_id: int, verb: str, schema, perform):
    def show_again(appointment, verb, values, refused):
        page = {"form": verb, "values": values, "errors": refused.errors, "problem": refused.detail}
        return _appointment_page(appointment, **page, status=refused.status)

    done = url_for("planning.appointment", appointment_id=appointment_id)
    return appointment_action(
        appointment_id, verb, schema, perform, show_again=show_again, done_url=done, read="appointment.read"
    )


def _appointment_page(appointment, *, form=None, values=None, errors=None, problem=None, status: int = 200):
    program = appointments.program_of(db(), appointment)
    context = {
        "appointment": appointment,
        "verbs": appointments.MACHINE.allowed_verbs(appointment.state),
        "at_pharmacy": program.is_at_pharmacy,
        "idel_options": _accompanying_options(program),
        "ranking": _ranking(appointment, program),
        "form": form,
        "values": values or {},
        "errors": errors or {},
        "problem": problem,
    }
    return render_template("planning/appointment.html", **context), status
