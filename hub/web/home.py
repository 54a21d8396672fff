from flask import Blueprint, render_template
from flask_login import current_user

from hub.db import utcnow
from hub.http.access import AUTHENTICATED, PUBLIC, access
from hub.http.request import db, territory_zone
from workflows import statements as shares

bp = Blueprint("home", __name__)


@bp.route("/")
@access(AUTHENTICATED)
def index():
    professional = current_user.professional
    assistance = None
    if shares.is_pharmacist(professional):
        assistance = shares.pharmacy_assistance(db(), professional, now=utcnow(), zone=territory_zone())
    return render_template("home.html", user=current_user, assistance=assistance)


@bp.route("/healthz")
@access(PUBLIC)
def health():
    return {"status": "ok"}
