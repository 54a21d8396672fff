"""/api/v1/indicators: the CPTS's indicators for a Paris year or month and a program, as the page shows them
(workflows.indicators): each table with its columns, its rows and how it is computed."""

from flask import request
from flask_login import current_user

from hub import audit
from hub.api import blueprint
from hub.auth.permissions import Permission
from hub.http.access import access
from hub.http.request import db, territory_zone
from hub.schemas.base import load
from hub.schemas.indicators import IndicatorArgs, IndicatorsOut
from workflows import indicators


@blueprint.get("/indicators")
@access(Permission.INDICATORS_READ_CPTS)
def get_indicators():
    filters = load(IndicatorArgs(), request.args.to_dict())
    zone = territory_zone()
    review = indicators.review(
        db(),
        cpts_id=current_user.cpts_id,
        year=filters.get("year") or indicators.current_year(zone),
        month=filters.get("month"),
        program_id=filters.get("program_id"),
        zone=zone,
    )
    audit.record(
        db(),
        actor=current_user,
        action="indicators.read",
        details={
            "year": review.scope.period.year,
            "month": review.scope.period.month,
            "program_id": review.scope.program_id,
        },
    )
    return IndicatorsOut().dump(review)
