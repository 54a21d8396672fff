"""« Mes visites »: the visits offered to a professional, confirmed or declined in one action each; a visit's own
page, made for a phone (where to go, whom to call, what for, what to bring) with the consent, the HAS checklist
before the session, the check-in, completion after the start, degraded mode, no-show; the visits done; the day
sheet of a round, to print."""

import datetime as dt

from flask import Blueprint, render_template, url_for
from flask_login import current_user

from hub import audit
from hub.auth.permissions import Permission
from hub.auth.policies import appointment_for, can_act_on_appointment
from hub.db import utcnow
from hub.http.access import access, light_page
from hub.http.request import db
from hub.models import (
    APPOINTMENT_KIND_LABELS,
    APPOINTMENT_STATE_LABELS,
    ATTACHMENT_KIND_LABELS,
    CONSENT_METHOD_LABELS,
    PLACE_KIND_LABELS,
    URGENCY_LABELS,
    Appointment,
    AppointmentState,
    Profession,
    Professional,
)
from hub.schemas.scheduling import (
    CHECKLIST_LABELS,
    IDENTITY_METHODS,
    SESSION_CONSENT_METHODS,
    AgendaArgs,
    CheckInForm,
    ChecklistForm,
    NoBodyForm,
    ReasonForm,
    SessionConsentForm,
)
from hub.web.pages import appointment_action, fixed_url, load_query
from hub.web.planning import zone
from scheduling.agenda import day_bounds
from workflows import appointments, completion, visits
from workflows import statements as shares

bp = Blueprint("visits", __name__, url_prefix="/visits")

NOT_A_PROFESSIONAL = (
    "Votre compte n'est lié à aucune fiche de professionnel : aucune visite ne peut vous être proposée."
)


@bp.context_processor
def labels():
    return {
        "APPOINTMENT_STATE_LABELS": APPOINTMENT_STATE_LABELS,
        "PLACE_KIND_LABELS": PLACE_KIND_LABELS,
        "APPOINTMENT_KIND_LABELS": APPOINTMENT_KIND_LABELS,
        "IDENTITY_METHODS": IDENTITY_METHODS,
        "CHECKLIST_LABELS": CHECKLIST_LABELS,
        "SESSION_CONSENT_METHODS": {method.value: CONSENT_METHOD_LABELS[method] for method in SESSION_CONSENT_METHODS},
        "ATTACHMENT_KIND_LABELS": ATTACHMENT_KIND_LABELS,
        "URGENCY_LABELS": URGENCY_LABELS,
        "lacks_remote_consent": appointments.lacks_remote_consent,
        # The visits' links made from this prefix: a url_for per line and per link cost more than the line's text.
        "visits_url": fixed_url("visits.index"),
    }


@bp.get("")
@access(Permission.VISITS_RESPOND)
@light_page
def index():
    return _page()


@bp.get("/<int:appointment_id>")
@access(Permission.VISITS_RESPOND)
def show(appointment_id: int):
    return _visit_page(appointment_for(db(), current_user, appointment_id, "read"))


@bp.get("/done")
@access(Permission.VISITS_RESPOND)
def done():
    finished = []
    if current_user.professional_id is not None:
        finished = visits.done_visits(db(), current_user.professional_id)
        audit.record(db(), actor=current_user, action="visits.read", details={"appointments": len(finished)})
    return render_template(
        "visits/done.html", finished=finished, size=visits.HISTORY_SIZE, explanation=NOT_A_PROFESSIONAL
    )


@bp.get("/day-sheet")
@access(Permission.VISITS_RESPOND)
def day_sheet():
    filters, values, errors = load_query(AgendaArgs())
    day = filters.get("day") or utcnow().astimezone(zone()).date()
    round_ = []
    if current_user.professional_id is not None:
        round_ = visits.round_of(db(), current_user.professional_id, *day_bounds(day, zone().key))
        audit.record(db(), actor=current_user, action="visits.read", details={"appointments": len(round_)})
    context = {"day": day, "round": round_, "step": dt.timedelta(days=1), "values": values, "errors": errors}
    return render_template("visits/day_sheet.html", explanation=NOT_A_PROFESSIONAL, **context)


@bp.post("/<int:appointment_id>/confirm")
@access(Permission.VISITS_RESPOND)
def confirm(appointment_id: int):
    def perform(appointment, _data):
        appointments.confirm(db(), current_user, appointment)
        return "Visite confirmée. Merci !"

    return _act(appointment_id, "confirm", NoBodyForm(), perform)


@bp.post("/<int:appointment_id>/decline")
@access(Permission.VISITS_RESPOND)
def decline(appointment_id: int):
    def perform(appointment, data):
        appointments.decline(db(), current_user, appointment, reason=data["reason"])
        return "Visite refusée : la coordination est prévenue, avec votre raison."

    # Declined, the visit is no longer hers to open: back to the list.
    return _act(appointment_id, "decline", ReasonForm(), perform, done_url=url_for("visits.index"))


@bp.post("/<int:appointment_id>/consent")
@access(Permission.VISITS_RESPOND)
def record_consent(appointment_id: int):
    """The missing telehealth consent, collected before confirming or at the session, so that it can go on."""

    def perform(appointment, data):
        appointments.record_remote_consent(db(), current_user, appointment, method=data["method"])
        return "Consentement à la télésanté recueilli : vous pouvez poursuivre."

    return _act(appointment_id, "record_consent", SessionConsentForm(), perform)


@bp.post("/<int:appointment_id>/checklist")
@access(Permission.VISITS_RESPOND)
def save_checklist(appointment_id: int):
    def perform(appointment, data):
        appointments.save_checklist(db(), current_user, appointment, items=data)
        return "Liste de vérification avant la séance enregistrée."

    return _act(appointment_id, "checklist", ChecklistForm(), perform)


@bp.post("/<int:appointment_id>/check-in")
@access(Permission.VISITS_RESPOND)
def check_in(appointment_id: int):
    def perform(appointment, data):
        appointments.check_in(db(), current_user, appointment, **data)
        return "Patient accueilli : identité, lieu et téléphone de rappel tracés."

    return _act(appointment_id, "check_in", CheckInForm(), perform)


@bp.post("/<int:appointment_id>/complete")
@access(Permission.VISITS_RESPOND)
def complete(appointment_id: int):
    def perform(appointment, _data):
        completion.complete(db(), current_user, appointment)
        return "Séance terminée."

    return _act(appointment_id, "complete", NoBodyForm(), perform)


@bp.post("/<int:appointment_id>/degrade")
@access(Permission.VISITS_RESPOND)
def degrade(appointment_id: int):
    def perform(appointment, data):
        appointments.degrade(db(), current_user, appointment, reason=data["reason"])
        return "Mode dégradé enregistré : la séance s'est poursuivie par téléphone."

    return _act(appointment_id, "degrade", ReasonForm(), perform)


@bp.post("/<int:appointment_id>/no-show")
@access(Permission.VISITS_RESPOND)
def no_show(appointment_id: int):
    def perform(appointment, _data):
        appointments.record_no_show(db(), current_user, appointment)
        return "Absence du patient enregistrée."

    return _act(appointment_id, "no_show", NoBodyForm(), perform)


def _act(appointment_id: int, verb: str, schema, perform, *, done_url: str | None = None):
    """An action from « Mes visites » or from the visit's page: done, the visit's page (what comes next is there);
    refused, the visit's page again with the form's errors, where every action and the consent are at hand."""

    def show_again(appointment, verb, values, refused):
        page = {"values": values, "errors": refused.errors, "problem": refused.detail}
        return _visit_page(appointment, form=f"{verb}-{appointment_id}", **page, status=refused.status)

    done_url = done_url or url_for("visits.show", appointment_id=appointment_id)
    return appointment_action(
        appointment_id, verb, schema, perform, show_again=show_again, done_url=done_url, read="appointment.read"
    )


def _visit_page(appointment: Appointment, *, form=None, values=None, errors=None, problem=None, status: int = 200):
    now = utcnow()
    context = {
        "sheet": visits.sheet(db(), appointment),
        "sees_record": can_act_on_appointment(db(), current_user, appointment, "read_record"),
        "started": now >= appointment.starts_at,
        "ended": now >= appointment.ends_at and appointment.state is not AppointmentState.CHECKED_IN,
        "takes_checklist": appointment.state in appointments.CHECKLIST_STATES,
        "finished": appointment.state in visits.FINISHED,
        "minor": appointments.is_minor_at_session(db(), appointment),
        "form": form,
        "values": values or {},
        "errors": errors or {},
        "problem": problem,
    }
    return render_template("visits/show.html", appointment=appointment, **context), status


def _page():
    professional_id = current_user.professional_id
    now = utcnow()
    today = now.astimezone(zone()).date()
    visits_ = assistance = None
    if professional_id is not None:
        visits_ = visits.visit_lists(db(), professional_id, *day_bounds(today, zone().key))
        shown = len(visits_.offered) + len(visits_.today) + len(visits_.upcoming)
        # The page's SessionCaller carries the profession: the professional's row is read for a pharmacist only.
        if current_user.profession is Profession.PHARMACIST:
            professional = db().get_one(Professional, professional_id)
            assistance = shares.pharmacy_assistance(db(), professional, now=now, zone=zone().key)
            shown += len(assistance.sessions.upcoming) + len(assistance.sessions.done)
        audit.record(db(), actor=current_user, action="visits.read", details={"appointments": shown})
    return render_template(
        "visits/index.html", visits=visits_, assistance=assistance, today=today, explanation=NOT_A_PROFESSIONAL
    )
