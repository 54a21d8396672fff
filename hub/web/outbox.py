"""The coordination's "Envois": every message the CPTS sends, where it stands, and "Renvoyer" for the dead ones;
above them, a warning when the worker is behind (outbox/_backlog.html)."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from connectors import dispatcher
from hub.auth.permissions import Permission, has_permission
from hub.db import utcnow
from hub.http.access import access
from hub.http.inputs import page_number
from hub.http.request import db
from hub.models import OUTBOX_STATE_LABELS, OutboxState
from hub.services import outbox_messages
from hub.web.pages import page_size

bp = Blueprint("outbox", __name__, url_prefix="/envois")

STATE_CHOICES = [(state.value, label) for state, label in OUTBOX_STATE_LABELS.items()]


@bp.get("")
@access(Permission.OUTBOX_READ)
def index():
    state = _state_filter()
    page = page_number()
    lines, total = outbox_messages.list_messages(
        db(), current_user.cpts_id, state=state, page=page, per_page=page_size()
    )
    context = {"lines": lines, "total": total, "page": page, "per_page": page_size(), "state": state}
    context["may_see_patients"] = has_permission(current_user, Permission.PATIENTS_READ)
    context["backlog"] = outbox_messages.backlog(db(), current_user.cpts_id, now=utcnow())
    return render_template("outbox/index.html", STATE_CHOICES=STATE_CHOICES, **context)


@bp.post("/<int:message_id>/requeue")
@access(Permission.OUTBOX_REQUEUE)
def requeue(message_id: int):
    line = outbox_messages.get_message(db(), current_user.cpts_id, message_id)
    dispatcher.requeue(db(), current_user, line.message.id)
    flash(f"Message n° {message_id} remis en file : il repartira au prochain passage de l'envoi.", "success")
    return redirect(url_for("outbox.index", state=request.form.get("state") or None))


def _state_filter() -> OutboxState | None:
    try:
        return OutboxState(request.args["state"]) if request.args.get("state") else None
    except ValueError:
        return None
