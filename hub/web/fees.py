"""Fee pages: "Mes actes et rémunérations" (the statement, its CSV and PDF, the 20 % share gauge and the
monthly activity), the coordinator's overview of the CPTS, and the admin's tariff editor."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from hub import audit
from hub.auth.fees import fees_professional_for
from hub.auth.permissions import Permission, has_permission
from hub.db import utcnow
from hub.errors import Forbidden, NotFound, ValidationFailed
from hub.formatting import MONTHS, euros, french_date, percent
from hub.http.access import access
from hub.http.downloads import download
from hub.http.forms import attempt, undo_refused_change
from hub.http.request import db, territory_zone
from hub.models import Profession
from hub.schemas.fees import ActivityForm, StatementArgs, TariffForm
from hub.services import statements, tariffs
from hub.services.statements import Period
from hub.web.pages import load_query, submit
from workflows import fees as fee_rules
from workflows import statements as shares

bp = Blueprint("fees", __name__, url_prefix="/fees")

MAX_IMPORT_BYTES = 64 * 1024
SHARE_WARNING = percent(fee_rules.REMOTE_SHARE_WARNING, places=0)
SHARE_LIMIT = percent(fee_rules.REMOTE_SHARE_LIMIT, places=0)
LEVEL_LABELS = {
    "ok": "Sous le seuil d'alerte",
    "alerte": f"Alerte : {SHARE_WARNING} atteints",
    "depasse": f"Plafond de {SHARE_LIMIT} dépassé",
    "inconnu": "Part inconnue : aucune activité déclarée",
}


@bp.context_processor
def labels():
    return {
        "MONTHS": MONTHS,
        "LEVEL_LABELS": LEVEL_LABELS,
        "percent": percent,
        "SHARE_WARNING": SHARE_WARNING,
        "SHARE_LIMIT": SHARE_LIMIT,
        # The gauge's marks, in points of percentage.
        "SHARE_WARNING_POINTS": fee_rules.REMOTE_SHARE_WARNING * 100,
        "SHARE_LIMIT_POINTS": fee_rules.REMOTE_SHARE_LIMIT * 100,
    }


# --- a professional's statement ---------------------------------------------------------------------------


@bp.get("/me")
@access(Permission.FEES_READ_OWN)
def mine():
    professional = current_user.professional
    if professional is None or professional.profession is Profession.COORDINATOR:
        if has_permission(current_user, Permission.FEES_READ_CPTS):
            # The filters carried as typed: as url_for arguments, `?_external=1` would steer the URL built.
            query = request.query_string.decode()
            return redirect(url_for("fees.overview") + (f"?{query}" if query else ""))
        raise NotFound("Aucun relevé : ce compte n'est pas celui d'un professionnel de santé.")
    return _statement_page(fees_professional_for(db(), current_user, professional.id))


@bp.get("/professionals/<int:professional_id>")
@access(Permission.FEES_READ_OWN)
def statement(professional_id: int):
    return _statement_page(fees_professional_for(db(), current_user, professional_id))


@bp.get("/professionals/<int:professional_id>/statement.csv")
@access(Permission.FEES_READ_OWN)
def statement_csv(professional_id: int):
    professional = fees_professional_for(db(), current_user, professional_id, action="fees.export")
    document = statements.statement(db(), professional, _period()[0])
    return download(statements.statement_csv(document), "text/csv; charset=utf-8", statements.csv_filename(document))


@bp.get("/professionals/<int:professional_id>/statement.pdf")
@access(Permission.FEES_READ_OWN)
def statement_pdf(professional_id: int):
    professional = fees_professional_for(db(), current_user, professional_id, action="fees.export")
    document = statements.statement(db(), professional, _period()[0])
    pdf = statements.statement_pdf(document, generated_on=_today())
    return download(pdf, "application/pdf", statements.pdf_filename(document))


def _statement_page(professional, *, form=None, values=None, errors=None, status: int = 200):
    period, selector = _period()
    today = _today()
    window = shares.share_window(today=today)
    is_own = professional.id == current_user.professional_id
    share = shares.professional_share(db(), professional, window)
    activity = shares.activity_overview(db(), professional, today=today) if is_own and share else None
    context = {
        "professional": professional,
        "is_own": is_own,
        "statement": statements.statement(db(), professional, period),
        "share": share,
        "activity": activity,
        "assistance": _assistance(professional, period.year, today),
        "window": window,
        "selector": selector,
        "years": _years(),
        "activity_options": [(month.key, month.label.capitalize()) for month in activity.months] if activity else [],
        "form": form,
        "values": values or {},
        "errors": errors or {},
    }
    return render_template("fees/statement.html", **context), status


def _assistance(professional, year: int, today):
    """A pharmacist's TLM of the year shown (none for a year to come)."""
    if not shares.is_pharmacist(professional) or year > today.year:
        return None
    return shares.pharmacy_assistance(db(), professional, now=utcnow(), zone=territory_zone(), year=year)


# --- declared activity ------------------------------------------------------------------------------------


@bp.post("/me/activity")
@access(Permission.ACTIVITY_DECLARE)
def declare_activity():
    professional = _own_share_professional()
    row, values, errors = submit(
        ActivityForm(), lambda data: shares.declare_month(db(), current_user, professional, **data, today=_today())
    )
    if row is None:
        # The service names the year or the month; the form has one field for both.
        errors = {("period" if key in ("year", "month") else key): text for key, text in errors.items()}
        return _refused_form(professional, "activity", values, errors)
    flash(f"Activité de {MONTHS[row.month - 1]} {row.year} enregistrée.", "success")
    return redirect(url_for("fees.mine"))


@bp.post("/me/activity/import")
@access(Permission.ACTIVITY_DECLARE)
def import_activity():
    professional = _own_share_professional()
    upload = request.files.get("file")
    content = upload.stream.read(MAX_IMPORT_BYTES + 1) if upload and upload.filename else b""

    def perform():
        if not content:
            raise ValidationFailed({"file": "Choisissez un fichier CSV (année;mois;montant)."})
        if len(content) > MAX_IMPORT_BYTES:
            raise ValidationFailed({"file": f"Fichier trop volumineux : au plus {MAX_IMPORT_BYTES // 1024} Ko."})
        return shares.import_activity(db(), current_user, professional, content, today=_today())

    rows, refused = attempt(perform, refusals=ValidationFailed)
    if refused:
        return _refused_form(professional, "import", {}, refused.errors)
    assert rows is not None  # not refused: attempt returned the months imported
    flash(f"{len(rows)} mois d'activité importé{'s' if len(rows) > 1 else ''}.", "success")
    return redirect(url_for("fees.mine"))


def _own_share_professional():
    professional = current_user.professional
    if professional is None or not shares.has_remote_share(professional):
        raise Forbidden(
            "La déclaration d'activité ne concerne que les infirmier·es et les masseurs-kinésithérapeutes.",
            audit_action="activity.declare",
        )
    return professional


def _refused_form(professional, form: str, values: dict, errors: dict):
    """The page again with the form's errors; nothing of the refused change stays, the page's read is traced."""
    undo_refused_change("fees.read", target=professional)
    return _statement_page(professional, form=form, values=values, errors=errors, status=422)


# --- the coordinator's overview ---------------------------------------------------------------------------


@bp.get("/cpts")
@access(Permission.FEES_READ_CPTS)
def overview():
    period, selector = _period()
    result = shares.cpts_overview(db(), current_user.cpts_id, period, today=_today())
    audit.record(db(), actor=current_user, action="fees.overview", details={"period": period.slug})
    overrides, _total = fee_rules.remote_share_overrides(db(), current_user.cpts_id)
    return render_template(
        "fees/overview.html", overview=result, selector=selector, years=_years(), overrides=overrides
    )


# --- the tariff editor ------------------------------------------------------------------------------------


@bp.get("/tariffs")
@access(Permission.TARIFFS_MANAGE)
def tariff_editor():
    return _tariff_page()


@bp.post("/tariffs")
@access(Permission.TARIFFS_MANAGE)
def add_tariff():
    tariff, values, errors = submit(TariffForm(), lambda data: tariffs.add_version(db(), current_user, **data))
    if tariff is None:
        return _tariff_page(values, errors, status=422)
    when = french_date(tariff.effective_from)
    flash(f"Nouvelle version de {tariff.code} enregistrée : {euros(tariff.amount)} à partir du {when}.", "success")
    return redirect(url_for("fees.tariff_editor"))


def _tariff_page(values=None, errors=None, *, status: int = 200):
    history = tariffs.tariff_history(db())
    return render_template("fees/tariffs.html", history=history, values=values or {}, errors=errors or {}), status


# --- helpers ----------------------------------------------------------------------------------------------


def _today():
    return fee_rules.local_day(utcnow(), territory_zone())


def _years() -> list[int]:
    this_year = _today().year
    return list(range(this_year, this_year - 5, -1))


def _period() -> tuple[Period, dict]:
    """The period asked for in the query string: a month, a whole year (a year without a month), or the
    current month; and the selector's values."""
    filters, _raw, _errors = load_query(StatementArgs())
    today = _today()
    year, month = filters.get("year"), filters.get("month")
    if year is None:
        year, month = today.year, month or today.month
    period = Period(year, month)
    return period, {"year": year, "month": month or ""}
