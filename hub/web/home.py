"""The home page: each person's desk (workflows.desk) — what they have to do today, counted, each count leading
to its list — and the coordination's « Visites à confirmer »."""

import datetime as dt

from flask import Blueprint, render_template, url_for
from flask_login import current_user

from hub import audit
from hub.auth.permissions import Permission
from hub.db import utcnow
from hub.formatting import waiting_since
from hub.http.access import AUTHENTICATED, PUBLIC, access
from hub.http.request import db, territory_zone
from hub.models import PLACE_KIND_LABELS, REFERRAL_STATE_LABELS
from hub.web.pages import row_url
from workflows import desk
from workflows.appointments import HOME_PLACES

bp = Blueprint("home", __name__)


@bp.app_template_filter("waiting_since")
def waiting_since_filter(moment: dt.datetime) -> str:
    return waiting_since(utcnow() - moment)


@bp.context_processor
def labels():
    return {
        "PLACE_KIND_LABELS": PLACE_KIND_LABELS,
        "REFERRAL_STATE_LABELS": REFERRAL_STATE_LABELS,
        "CONNECTOR_SETTING_LABELS": desk.CONNECTOR_SETTING_LABELS,
        "HOME_PLACES": HOME_PLACES,
        "visits_url": url_for("visits.index"),  # the visits' links made from it, not a url_for per line
    }


@bp.route("/")
@access(AUTHENTICATED)
def index():
    now = utcnow()
    board = desk.desk_of(db(), current_user, zone=territory_zone(), now=now)
    shown = _patient_rows(board)
    if shown:
        audit.record(db(), actor=current_user, action="desk.read", details={"patient_rows": shown})
    # The coordinator's rows link to their appointments: their addresses made from one url_for.
    appointment_url = row_url("planning.appointment", "appointment_id") if board.coordinator else None
    return render_template("home.html", user=current_user, desk=board, now=now, appointment_url=appointment_url)


def _patient_rows(board: desk.Desk) -> int:
    """How many rows naming a patient the desk shows: its read is audited like any list of patients."""
    rows = 0
    if board.coordinator:
        rows += len(board.coordinator.first_unconfirmed) + len(board.coordinator.first_without_idel)
        rows += sum(len(view.best) for view in board.coordinator.first_freed_slots)
        rows += len(board.coordinator.first_to_reschedule)
    for visits in (board.idel, board.pharmacist.visits if board.pharmacist else None):
        if visits:
            rows += len(visits.to_confirm) + len(visits.today_visits) + len(visits.tomorrow_visits)
            rows += len(visits.later_visits)
    if board.gp:
        rows += len(board.gp.recent_reports) + len(board.gp.proposed_patients)
    if board.specialist:
        rows += len(board.specialist.to_sign)
    return rows


@bp.get("/desk/unconfirmed-visits")
@access(Permission.APPOINTMENTS_BOOK)
def unconfirmed():
    """« Visites à confirmer »: the visits waiting for their IDEL's answer, and those no IDEL accompanies."""
    now = utcnow()
    waiting = desk.unconfirmed_visits(db(), current_user.cpts_id, now=now)
    without = desk.visits_without_idel(db(), current_user.cpts_id, now=now)
    details = {"appointments": len(waiting) + len(without)}
    audit.record(db(), actor=current_user, action="desk.unconfirmed_visits", details=details)
    return render_template("desk/unconfirmed.html", waiting=waiting, without=without)


@bp.route("/healthz")
@access(PUBLIC)
def health():
    return {"status": "ok"}
