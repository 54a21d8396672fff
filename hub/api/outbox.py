"""The CPTS's outbox for the coordination and the admin: list, read, re-queue a dead message."""

from flask import request
from flask_login import current_user

from connectors import dispatcher
from hub.api import blueprint, json_body, page_of, pagination
from hub.auth.permissions import Permission, has_permission
from hub.http.access import access
from hub.http.request import db
from hub.models import OutboxState
from hub.schemas.base import load
from hub.schemas.outbox import OutboxMessageOut, OutboxQueryArgs
from hub.schemas.scheduling import NoBodyIn
from hub.services import outbox_messages
from hub.services.outbox_messages import OutboxLine


@blueprint.get("/outbox")
@access(Permission.OUTBOX_READ)
def list_outbox_messages():
    page, per_page = pagination()
    query = load(OutboxQueryArgs(), request.args.to_dict())
    lines, total = outbox_messages.list_messages(
        db(),
        current_user.cpts_id,
        state=query.get("state"),
        channel=query.get("channel"),
        page=page,
        per_page=per_page,
    )
    may_see_patients = has_permission(current_user, Permission.PATIENTS_READ)
    return page_of(OutboxMessageOut(), [_item(line, may_see_patients) for line in lines], total, page, per_page)


@blueprint.get("/outbox/<int:message_id>")
@access(Permission.OUTBOX_READ)
def get_outbox_message(message_id: int):
    line = outbox_messages.get_message(db(), current_user.cpts_id, message_id)
    return OutboxMessageOut().dump(_item(line, has_permission(current_user, Permission.PATIENTS_READ)))


@blueprint.post("/outbox/<int:message_id>/requeue")
@access(Permission.OUTBOX_REQUEUE)
def requeue_outbox_message(message_id: int):
    """A dead message back to pending, due now (409 for a message that is not dead)."""
    line = outbox_messages.get_message(db(), current_user.cpts_id, message_id)
    load(NoBodyIn(), json_body() if request.get_data() else {})
    dispatcher.requeue(db(), current_user, line.message.id)
    return OutboxMessageOut().dump(_item(line, has_permission(current_user, Permission.PATIENTS_READ)))


MESSAGE_FIELDS: tuple[str, ...] = (
    "id",
    "channel",
    "kind",
    "state",
    "attempts",
    "max_attempts",
    "last_error",
    "receipt",
)
MESSAGE_FIELDS += ("created_at", "sent_at")


def _item(line: OutboxLine, may_see_patients: bool) -> dict:
    message = line.message
    return {
        **{name: getattr(message, name) for name in MESSAGE_FIELDS},
        "recipient": line.shown_recipient(may_see_patients),
        "kind_label": line.kind_label,
        "state_label": line.state_label,
        "next_attempt_at": message.next_attempt_at if message.state is OutboxState.PENDING else None,
        "delivery_id": line.delivery.id if line.delivery is not None else None,
        "acknowledgement": line.acknowledgement,
    }
