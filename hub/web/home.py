from flask import Blueprint, render_template
from flask_login import current_user

from hub.http.access import AUTHENTICATED, PUBLIC, access

bp = Blueprint("home", __name__)


@bp.route("/")
@access(AUTHENTICATED)
def index():
    return render_template("home.html", user=current_user)


@bp.route("/healthz")
@access(PUBLIC)
def health():
    return {"status": "ok"}
