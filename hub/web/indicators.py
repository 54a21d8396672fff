"""« Indicateurs »: the coordinator's charts and tables of the CPTS's activity for a Paris year or month and a
program (workflows.indicators), and the year's export for the annual review as CSV and as a PDF with the charts."""

from flask import Blueprint, render_template
from flask_login import current_user

from hub import audit, charts
from hub.auth.permissions import Permission
from hub.db import utcnow
from hub.documents.indicators import review_pdf
from hub.errors import NotFound, ValidationFailed
from hub.formatting import figure
from hub.http.access import access
from hub.http.downloads import download
from hub.http.request import db, territory_zone
from hub.schemas.indicators import IndicatorArgs
from hub.web.pages import load_query
from workflows import indicators

bp = Blueprint("indicators", __name__, url_prefix="/indicateurs")


@bp.context_processor
def formatting():
    return {"MONTH_NAMES": indicators.MONTH_NAMES, "figure": figure}


@bp.get("")
@access(Permission.INDICATORS_READ_CPTS)
def index():
    filters, _raw, errors = load_query(IndicatorArgs())
    try:
        review = _review(filters)
    except NotFound:  # the program filter of another CPTS, or of none: said next to the filter
        errors = errors | {"program_id": indicators.UNKNOWN_PROGRAM}
        review = _review(filters | {"program_id": None})
    audit.record(db(), actor=current_user, action="indicators.read", details=review.audit_details)
    return render_template(
        "indicators/index.html",
        review=review,
        charts=_charts(review),
        programs=indicators.programs(db(), current_user.cpts_id),
        export_args={"year": review.scope.period.year, "program_id": review.scope.program_id},
        errors=errors,
    )


@bp.get("/export.csv")
@access(Permission.INDICATORS_READ_CPTS)
def export_csv():
    review = _year_review()
    audit.record(db(), actor=current_user, action="indicators.export", details=review.audit_details | {"format": "csv"})
    return download(indicators.to_csv(review), "text/csv; charset=utf-8", _filename(review, "csv"))


@bp.get("/export.pdf")
@access(Permission.INDICATORS_READ_CPTS)
def export_pdf():
    review = _year_review()
    audit.record(db(), actor=current_user, action="indicators.export", details=review.audit_details | {"format": "pdf"})
    content = review_pdf(review, _charts(review), made_at=utcnow(), zone=territory_zone())
    return download(content, "application/pdf", _filename(review, "pdf"))


def _review(filters: dict) -> indicators.Review:
    return indicators.review(
        db(),
        cpts_id=current_user.cpts_id,
        year=filters.get("year"),
        month=filters.get("month"),
        program_id=filters.get("program_id"),
        zone=territory_zone(),
    )


def _year_review() -> indicators.Review:
    """The export is the year's, whatever month the page shows: the annual review is made of years."""
    filters, _raw, errors = load_query(IndicatorArgs())
    if errors:
        raise ValidationFailed(errors)
    return _review(filters | {"month": None})


def _charts(review: indicators.Review) -> dict[str, str]:
    return {
        indicator.key: charts.bar_chart(indicator.title, *indicator.chart_series)
        for indicator in review.indicators
        if indicator.chart
    }


def _filename(review: indicators.Review, extension: str) -> str:
    program = f"-programme-{review.scope.program_id}" if review.scope.program_id else ""
    return f"indicateurs-cpts-{review.scope.period.year}{program}.{extension}"
