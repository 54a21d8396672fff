"""Reports (compte-rendus): the specialist's « Ma séance » worklist, the report form and its signature, the
report page with its versions and deliveries, and the coordination's « Comptes rendus en retard »."""

import datetime as dt
import json

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hub import audit
from hub.auth.permissions import Permission
from hub.auth.policies import appointment_for, report_for
from hub.db import utcnow
from hub.errors import DocumentPending, ValidationFailed
from hub.http.access import access
from hub.http.downloads import send
from hub.http.forms import attempt, load_form
from hub.http.request import db, territory_zone, upload_dir
from hub.models import (
    APPOINTMENT_STATE_LABELS,
    ATTACHMENT_KIND_LABELS,
    MODALITY_LABELS,
    PLACE_KIND_LABELS,
    RECIPIENT_ROLE_LABELS,
    REPORT_KIND_LABELS,
    REPORT_STATE_LABELS,
    Appointment,
    AppointmentKind,
    Patient,
    Professional,
    Referral,
    Report,
    ReportState,
    delivery_label,
)
from hub.schemas.reports import ReportForm
from hub.schemas.scheduling import CHECKLIST_LABELS, IDENTITY_METHODS, AgendaArgs, NoBodyForm, ReasonForm
from hub.web import attendance as attendance_pages
from hub.web.pages import load_query
from hub.web.planning import zone
from hub.web.states import allows
from workflows import desk, reports

bp = Blueprint("reports", __name__, url_prefix="/reports")

TEXT_FIELDS = ("acts", "prescriptions", "technical_incidents", "conclusion", "follow_up", "follow_up_modality")
NOT_A_PROFESSIONAL = "Votre compte n'est lié à aucune fiche de professionnel : vous n'avez pas de séance."
NOT_CONFIRMED = "Cochez « Je confirme la signature et l'envoi » pour signer et envoyer le compte rendu."


@bp.context_processor
def labels():
    return {
        "REPORT_KIND_LABELS": REPORT_KIND_LABELS,
        "REPORT_STATE_LABELS": REPORT_STATE_LABELS,
        "RECIPIENT_ROLE_LABELS": RECIPIENT_ROLE_LABELS,
        "APPOINTMENT_STATE_LABELS": APPOINTMENT_STATE_LABELS,
        "ATTACHMENT_KIND_LABELS": ATTACHMENT_KIND_LABELS,
        "PLACE_KIND_LABELS": PLACE_KIND_LABELS,
        "IDENTITY_METHODS": IDENTITY_METHODS,
        "CHECKLIST_LABELS": CHECKLIST_LABELS,
        "delivery_label": delivery_label,
    }


# --- « Ma séance » ------------------------------------------------------------------------------------------


@bp.get("/session")
@access(Permission.REPORTS_WRITE)
def worklist():
    filters, values, errors = load_query(AgendaArgs())
    professional_id = current_user.professional_id
    day = filters.get("day") or desk.opening_day(db(), professional_id, zone=territory_zone(), now=utcnow())
    rows = reports.worklist(db(), professional_id, day, zone=territory_zone()) if professional_id is not None else []
    attendance_pages.prefetch_presence([row.appointment for row in rows])
    audit.record(db(), actor=current_user, action="worklist.read", details={"appointments": len(rows)})
    return render_template(
        "reports/worklist.html",
        day=day,
        step=dt.timedelta(days=1),
        rows=rows,
        values=values,
        errors=errors,
        professional_id=professional_id,
        explanation=NOT_A_PROFESSIONAL,
        TELESOIN=AppointmentKind.TELESOIN,
    )


@bp.post("/start/<int:appointment_id>")
@access(Permission.REPORTS_WRITE)
def start(appointment_id: int):
    appointment = appointment_for(db(), current_user, appointment_id, "read")
    _data, _values, errors = load_form(NoBodyForm())
    report, refused = attempt(lambda: reports.start_report(db(), current_user, appointment), form_errors=errors)
    if refused:
        return _back_to_worklist(appointment, refused.detail)
    assert report is not None  # not refused: attempt returned the report
    return redirect(url_for("reports.edit", report_id=report.id))


def _back_to_worklist(appointment: Appointment, message: str):
    """A refused action from the worklist (already undone): the reason is shown on the day's list."""
    flash(message, "error")
    day = appointment.starts_at.astimezone(zone()).date()
    return redirect(url_for("reports.worklist", day=day.isoformat()))


@bp.post("/waive/<int:appointment_id>")
@access(Permission.REPORTS_WRITE)
def waive(appointment_id: int):
    """A serial télésoin session without its own report (seed 002), with the reason."""
    appointment = appointment_for(db(), current_user, appointment_id, "read")
    data, _values, errors = load_form(ReasonForm())

    def perform():
        if errors:
            raise ValidationFailed(errors, "Indiquez pourquoi cette séance n'a pas de compte rendu propre.")
        reports.waive_report(db(), current_user, appointment, reason=data["reason"])

    _, refused = attempt(perform)
    if refused:
        return _back_to_worklist(appointment, refused.detail)
    flash("Séance enregistrée sans compte rendu propre (série de télésoin).", "success")
    day = appointment.starts_at.astimezone(zone()).date()
    return redirect(url_for("reports.worklist", day=day.isoformat()))


# --- the form and the signature -----------------------------------------------------------------------------


def _participants(report: Report) -> list[Professional]:
    ids = [i for i in json.loads(report.participant_ids or "[]") if isinstance(i, int)] or [0]
    return list(db().scalars(select(Professional).where(Professional.id.in_(ids)).order_by(Professional.id)))


def _referrals_of(appointment: Appointment | None) -> list[Referral]:
    """The letters and attachments (ECG…) that brought the patient to the session, beside the report's text."""
    if appointment is None:
        return []
    query = select(Referral).options(selectinload(Referral.attachments))
    return list(db().scalars(query.where(Referral.appointment_id == appointment.id)))


def _form_page(report: Report, values: dict, errors: dict | None = None, *, problem=None, status: int = 200):
    appointment = db().get(Appointment, report.appointment_id) if report.appointment_id else None
    return (
        render_template(
            "reports/form.html",
            report=report,
            appointment=appointment,
            participants=_participants(report),
            recipients=reports.recipient_lines(db(), report, now=utcnow()),
            referrals=_referrals_of(appointment),
            values=values,
            errors=errors or {},
            problem=problem,
            modality_options=[(m.value, label) for m, label in MODALITY_LABELS.items()],
            TELESOIN=AppointmentKind.TELESOIN,
        ),
        status,
    )


@bp.get("/<int:report_id>/edit")
@access(Permission.REPORTS_WRITE)
def edit(report_id: int):
    report = report_for(db(), current_user, report_id, "update")
    if not allows(report, "update"):
        return redirect(url_for("reports.show", report_id=report.id))
    audit.record(db(), actor=current_user, action="report.read", target=report, cpts_id=report.cpts_id)
    values = {name: getattr(report, name) for name in TEXT_FIELDS} | {"copy_participants": report.copy_participants}
    return _form_page(report, values)


@bp.post("/<int:report_id>/edit")
@access(Permission.REPORTS_WRITE)
def save(report_id: int):
    """« Enregistrer le brouillon » or « Signer et envoyer »: on any error nothing is saved."""
    report = report_for(db(), current_user, report_id, "update")
    data, values, errors = load_form(ReportForm())

    def perform():
        signing = data.pop("action", "save") == "sign"
        fields = {name: data.get(name) for name in TEXT_FIELDS}
        reports.update_draft(
            db(), current_user, report, **fields, copy_participants=data.get("copy_participants", False)
        )
        if signing:
            _confirmed(report, data.get("confirm", False))
            reports.sign(db(), current_user, report, upload_dir=upload_dir(), zone=territory_zone())
        return signing

    signing, refused = attempt(perform, form_errors=errors, read="report.form", target=report)
    if refused:
        db().refresh(report)
        return _form_page(report, values, _named(refused.errors), problem=refused.detail, status=refused.status)
    if signing:
        # Nobody to send to (no médecin traitant, no copy): signed is sent, and it is read in the hub only.
        sent = report.state is ReportState.SENT
        where = "il n'a aucun destinataire et se lit dans le hub" if sent else "puis il part vers ses destinataires"
        flash(f"Compte rendu signé : son document est en préparation, {where}.", "success")
        return redirect(url_for("reports.show", report_id=report.id))
    flash("Brouillon enregistré.", "success")
    return redirect(url_for("reports.edit", report_id=report.id))


def _named(errors: dict | None) -> dict:
    """Each error names its field, in the summary above the form as beside the field."""
    labels = reports.FIELD_LABELS
    return {
        name: message if name not in labels or message.startswith(labels[name]) else f"{labels[name]} : {message}"
        for name, message in (errors or {}).items()
    }


def _confirmed(report: Report, confirm: bool) -> None:
    """The page's confirmation before signing, refused together with the fields the signature still needs."""
    missing = reports.missing_to_sign(report)
    if not confirm:
        missing["confirm"] = NOT_CONFIRMED
    if missing:
        detail = NOT_CONFIRMED if list(missing) == ["confirm"] else reports.incomplete(missing)
        raise ValidationFailed(missing, detail)


# --- the report page ----------------------------------------------------------------------------------------


@bp.get("/<int:report_id>")
@access(Permission.REPORTS_READ)
def show(report_id: int):
    report = report_for(db(), current_user, report_id, "read")
    chain = reports.chain_of(db(), report)
    author = current_user.professional_id == report.author_id
    return render_template(
        "reports/show.html",
        report=report,
        previous=next((r for r in chain if r.id == report.supersedes_id), None),
        following=next((r for r in chain if r.supersedes_id == report.id), None),
        chain=chain,
        waits_for=reports.rendering_wait(db(), report),
        participants=_participants(report),
        appointment=db().get(Appointment, report.appointment_id) if report.appointment_id else None,
        can_correct=author and allows(report, "supersede") and report.superseded_at is None,
        can_edit=author and allows(report, "update"),
        MODALITY_LABELS={m.value: label for m, label in MODALITY_LABELS.items()},
    )


@bp.get("/<int:report_id>/pdf")
@access(Permission.REPORTS_READ)
def pdf(report_id: int):
    report = report_for(db(), current_user, report_id, "read")
    try:
        return send(reports.signed_pdf(db(), current_user, report, upload_dir=upload_dir()))
    except DocumentPending as pending:  # back to the report's page, which says what the document waits for
        flash(pending.detail, "info")
        return redirect(url_for("reports.show", report_id=report_id))


@bp.post("/<int:report_id>/supersede")
@access(Permission.REPORTS_WRITE)
def supersede(report_id: int):
    report = report_for(db(), current_user, report_id, "supersede")
    _data, _values, errors = load_form(NoBodyForm())
    correction, refused = attempt(lambda: reports.supersede(db(), current_user, report), form_errors=errors)
    if refused:
        flash(refused.detail, "error")
        return redirect(url_for("reports.show", report_id=report_id))
    assert correction is not None  # not refused: attempt returned the new version
    flash(f"Version {correction.version} créée : corrigez-la puis signez-la.", "success")
    return redirect(url_for("reports.edit", report_id=correction.id))


# --- the coordination ---------------------------------------------------------------------------------------


@bp.get("/overdue")
@access(Permission.REPORTS_MONITOR)
def overdue():
    """What is late in the CPTS: unsigned reports and deliveries past their due time (four queries)."""
    items = reports.overdue(db(), current_user.cpts_id, now=utcnow())
    patient_ids = {item.patient_id for item in items} or {0}
    patients = {p.id: p for p in db().scalars(select(Patient).where(Patient.id.in_(patient_ids)))}
    audit.record(db(), actor=current_user, action="report.overdue_list", details={"count": len(items)})
    return render_template("reports/overdue.html", items=items, patients=patients)
