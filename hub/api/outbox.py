"""The CPTS's outbox for the coordination and the admin: list, read, re-queue a dead message."""

from flask import current_app, request
from flask_login import current_user

from connectors import dispatcher
from hub.api import blueprint, json_body, pagination
from hub.auth.permissions import Permission, has_permission
from hub.db import utcnow
from hub.http.access import access, light_read
from hub.http.request import db
from hub.schemas.base import load
from hub.schemas.outbox import OutboxQueryArgs, outbox_message_json, outbox_status_json
from hub.schemas.scheduling import NoBodyIn
from hub.services import outbox_messages

_QUERY_ARGS = OutboxQueryArgs()  # built once: it keeps no per-request state


@blueprint.get("/outbox")
@access(Permission.OUTBOX_READ)
@light_read  # one SELECT after the token's (the page with its total), no audit row, no transaction (P7)
def list_outbox_messages():
    page, per_page = pagination()
    query = load(_QUERY_ARGS, request.args.to_dict())
    lines, total = outbox_messages.list_messages(
        db(),
        current_user.cpts_id,
        state=query.get("state"),
        channel=query.get("channel"),
        page=page,
        per_page=per_page,
    )
    may_see_patients = has_permission(current_user, Permission.PATIENTS_READ)
    items = [outbox_message_json(line, may_see_patients) for line in lines]
    return {"items": items, "page": page, "per_page": per_page, "total": total}


@blueprint.get("/outbox/status")
@access(Permission.OUTBOX_READ)
@light_read  # one SELECT after the token's, no audit row (counts, no patient)
def get_outbox_status():
    """Whether the worker keeps up with the CPTS's messages: how many due messages it has not taken, since when the
    oldest waits, and `late` past HUB_OUTBOX_ALERT_MINUTES (the worker is behind or stopped; nothing is lost)."""
    backlog = outbox_messages.backlog(db(), current_user.cpts_id, now=utcnow())
    return outbox_status_json(backlog, outbox_messages.alert_after(current_app.config["HUB"]))


@blueprint.get("/outbox/<int:message_id>")
@access(Permission.OUTBOX_READ)
def get_outbox_message(message_id: int):
    line = outbox_messages.get_message(db(), current_user.cpts_id, message_id)
    return outbox_message_json(line, has_permission(current_user, Permission.PATIENTS_READ))


@blueprint.post("/outbox/<int:message_id>/requeue")
@access(Permission.OUTBOX_REQUEUE)
def requeue_outbox_message(message_id: int):
    """A dead message back to pending, due now (409 for a message that is not dead)."""
    line = outbox_messages.get_message(db(), current_user.cpts_id, message_id)
    load(NoBodyIn(), json_body() if request.get_data() else {})
    dispatcher.requeue(db(), current_user, line.message.id)
    return outbox_message_json(line, has_permission(current_user, Permission.PATIENTS_READ))
