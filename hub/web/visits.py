"""« Mes visites »: the visits offered to a professional, confirmed or declined in one action each, and the
day's sessions with the HAS checklist: check-in (identity, location, call-back phone), completion,
degraded mode, no-show."""

from flask import Blueprint, render_template, url_for
from flask_login import current_user

from hub import audit
from hub.auth.permissions import Permission
from hub.db import utcnow
from hub.http.access import access
from hub.http.request import db
from hub.models import APPOINTMENT_KIND_LABELS, APPOINTMENT_STATE_LABELS, CONSENT_METHOD_LABELS, PLACE_KIND_LABELS
from hub.schemas.scheduling import (
    CHECKLIST_LABELS,
    IDENTITY_METHODS,
    SESSION_CONSENT_METHODS,
    CheckInForm,
    CompletionForm,
    NoBodyForm,
    ReasonForm,
    SessionConsentForm,
)
from hub.web.pages import appointment_action
from hub.web.planning import zone
from scheduling import board
from scheduling.agenda import day_bounds
from workflows import appointments, completion
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
        "lacks_remote_consent": appointments.lacks_remote_consent,
    }


@bp.get("")
@access(Permission.VISITS_RESPOND)
def index():
    return _page()


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

    return _act(appointment_id, "decline", ReasonForm(), perform)


@bp.post("/<int:appointment_id>/check-in")
@access(Permission.VISITS_RESPOND)
def check_in(appointment_id: int):
    def perform(appointment, data):
        appointments.check_in(db(), current_user, appointment, **data)
        return "Patient accueilli : identité, lieu et téléphone de rappel tracés."

    return _act(appointment_id, "check_in", CheckInForm(), perform)


@bp.post("/<int:appointment_id>/consent")
@access(Permission.VISITS_RESPOND)
def record_consent(appointment_id: int):
    """The missing telehealth consent collected at the session, so that the check-in can go on."""

    def perform(appointment, data):
        appointments.record_remote_consent(db(), current_user, appointment, method=data["method"])
        return "Consentement au télésoin recueilli : vous pouvez accueillir le patient."

    return _act(appointment_id, "record_consent", SessionConsentForm(), perform)


@bp.post("/<int:appointment_id>/complete")
@access(Permission.VISITS_RESPOND)
def complete(appointment_id: int):
    def perform(appointment, data):
        completion.complete(db(), current_user, appointment, checklist=data)
        return "Séance terminée."

    return _act(appointment_id, "complete", CompletionForm(), perform)


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


def _act(appointment_id: int, verb: str, schema, perform):
    def show_again(_appointment, verb, values, refused):  # the page audits its own read
        form = f"{verb}-{appointment_id}"
        return _page(form=form, values=values, errors=refused.errors, problem=refused.detail, status=refused.status)

    return appointment_action(
        appointment_id, verb, schema, perform, show_again=show_again, done_url=url_for("visits.index")
    )


def _page(*, form=None, values=None, errors=None, problem=None, status: int = 200):
    professional_id = current_user.professional_id
    now = utcnow()
    today = now.astimezone(zone()).date()
    visits = assistance = None
    if professional_id is not None:
        visits = board.visits_of(db(), professional_id, *day_bounds(today, zone().key))
        shown = len(visits.offered) + len(visits.today) + len(visits.upcoming)
        if shares.is_pharmacist(current_user.professional):
            assistance = shares.pharmacy_assistance(db(), current_user.professional, now=now, zone=zone().key)
            shown += len(assistance.sessions.upcoming) + len(assistance.sessions.done)
        audit.record(db(), actor=current_user, action="visits.read", details={"appointments": shown})
    context = {"form": form, "values": values or {}, "errors": errors or {}, "problem": problem}
    return render_template(
        "visits/index.html",
        visits=visits,
        assistance=assistance,
        today=today,
        explanation=NOT_A_PROFESSIONAL,
        **context,
    ), status
