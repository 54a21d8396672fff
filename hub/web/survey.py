"""The patient's satisfaction survey, reached from the link sent after a remote session: no account (the token
in the address is the key), no JavaScript, answered once. A refused or expired link says why in French."""

from flask import Blueprint, render_template

from hub.errors import HubError
from hub.http.access import PUBLIC, access
from hub.http.csrf import check_csrf
from hub.http.forms import attempt, load_form
from hub.http.request import db
from hub.models import SCORES, SURVEY_QUESTIONS, WOULD_AGAIN_QUESTION
from hub.schemas.surveys import SurveyForm
from workflows import surveys

bp = Blueprint("survey", __name__)


@bp.context_processor
def questions():
    return {"SCORES": SCORES, "SURVEY_QUESTIONS": SURVEY_QUESTIONS, "WOULD_AGAIN_QUESTION": WOULD_AGAIN_QUESTION}


@bp.get("/enquete/<token>")
@access(PUBLIC)
def form(token: str):
    try:
        surveys.open_survey(db(), token)
    except HubError as refusal:
        return _closed(refusal)
    return render_template("survey/form.html", token=token, values={}, errors={})


@bp.post("/enquete/<token>")
@access(PUBLIC)
def answer(token: str):
    check_csrf()
    data, raw, form_errors = load_form(SurveyForm())
    _survey, refusal = attempt(lambda: surveys.answer(db(), token, data), form_errors=form_errors)
    if refusal is None:
        return render_template("survey/thanks.html")
    if refusal.errors:
        return render_template("survey/form.html", token=token, values=raw, errors=refusal.errors), refusal.status
    return _closed(refusal)


def _closed(refusal: HubError):
    return render_template("survey/closed.html", message=refusal.detail), refusal.status
