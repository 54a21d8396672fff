"""/api/v1/reports: the performer's compte-rendu (draft, signature, correction), its deliveries and its PDF."""

from flask import request
from flask_login import current_user
from sqlalchemy.orm import joinedload

from hub import audit
from hub.api import blueprint, created, json_body, load_json, page_of
from hub.auth.permissions import Permission
from hub.auth.policies import appointment_for, report_for
from hub.db import utcnow
from hub.errors import RuleViolation
from hub.http.access import access, light_read
from hub.http.downloads import send
from hub.http.request import db, territory_zone, upload_dir
from hub.models import Report
from hub.schemas.base import load
from hub.schemas.reports import RecipientOut, ReportStartIn, ReportUpdateIn, SessionDayArgs, SessionDayOut, report_out
from hub.schemas.scheduling import NoBodyIn
from workflows import desk, reports

# Built once (a schema's construction copies its declared fields, issue 17 P7).
_START = ReportStartIn()
_UPDATE = ReportUpdateIn()
_NO_BODY = NoBodyIn()
# One object for every request: the access check builds its SELECT once per loader options (hub.auth.policies).
_READ_LOAD = (joinedload(Report.deliveries),)


def _body(report) -> dict:
    return report_out(report, waits_for=reports.rendering_wait(db(), report))


@blueprint.get("/me/session")
@access(Permission.REPORTS_WRITE)
def get_my_session():
    """« Ma séance »: the patients of the day asked, else of the caller's session day (today if they have patients
    today, else their next day with patients)."""
    if current_user.professional_id is None:
        raise RuleViolation("Votre compte n'est lié à aucune fiche de professionnel : vous n'avez pas de séance.")
    args = load(SessionDayArgs(), request.args.to_dict())
    day = args.get("day") or desk.opening_day(db(), current_user.professional_id, zone=territory_zone(), now=utcnow())
    rows = reports.worklist(db(), current_user.professional_id, day, zone=territory_zone())
    audit.record(db(), actor=current_user, action="worklist.read", details={"appointments": len(rows)})
    return SessionDayOut().dump({"day": day, "items": rows})


@blueprint.post("/reports")
@access(Permission.REPORTS_WRITE)
def create_report():
    """The session's draft: created, or the one already begun (200)."""
    data = load_json(_START)
    # Locked as begin_report locks it, by its performer only: nobody else writes its report.
    appointment = appointment_for(db(), current_user, data["appointment_id"], "read", lock_as_performer=True)
    report, new = reports.begin_report(db(), current_user, appointment)
    if not new:
        return _body(report)
    return created(_body(report), "api.get_report", report_id=report.id)


@blueprint.get("/reports/<int:report_id>")
@access(Permission.REPORTS_READ)
@light_read  # the report, its deliveries, the version it waits for, and the audit row: no transaction held across
def get_report(report_id: int):
    return _body(report_for(db(), current_user, report_id, "read", load=_READ_LOAD))


@blueprint.get("/reports/<int:report_id>/recipients")
@access(Permission.REPORTS_READ)
def list_report_recipients(report_id: int):
    """Who receives the report, by when (from the session's end and the program's delays), and each sending's
    state; before the signature, where it will go."""
    report = report_for(db(), current_user, report_id, "read")
    lines = reports.recipient_lines(db(), report, now=utcnow())
    return page_of(RecipientOut(), lines, len(lines), 1, max(len(lines), 1))  # a handful: one page


@blueprint.patch("/reports/<int:report_id>")
@access(Permission.REPORTS_WRITE)
def update_report(report_id: int):
    report = report_for(db(), current_user, report_id, "update", lock=True)  # as update_draft locks it
    reports.update_draft(db(), current_user, report, **load_json(_UPDATE))
    return _body(report)


def _no_body() -> None:
    load(_NO_BODY, json_body() if request.get_data() else {})


@blueprint.post("/reports/<int:report_id>/sign")
@access(Permission.REPORTS_WRITE)
def sign_report(report_id: int):
    report = report_for(db(), current_user, report_id, "sign", lock=True, load=reports.SIGN_LOAD)  # as sign
    _no_body()
    return _body(reports.sign(db(), current_user, report, upload_dir=upload_dir(), zone=territory_zone()))


@blueprint.post("/reports/<int:report_id>/supersede")
@access(Permission.REPORTS_WRITE)
def supersede_report(report_id: int):
    """A correction: the new version's draft, to edit and sign in turn."""
    report = report_for(db(), current_user, report_id, "supersede")
    _no_body()
    correction = reports.supersede(db(), current_user, report)
    return created(_body(correction), "api.get_report", report_id=correction.id)


@blueprint.get("/reports/<int:report_id>/pdf")
@access(Permission.REPORTS_READ)
def get_report_pdf(report_id: int):
    report = report_for(db(), current_user, report_id, "read")
    return send(reports.signed_pdf(db(), current_user, report, upload_dir=upload_dir()))
