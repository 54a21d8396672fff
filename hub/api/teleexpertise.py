"""/api/v1/teleexpertise: requests (attachments inside the JSON body, in base64), the expert's take, start,
decline and answer (draft, and signature in the same call or a later one), the requester's close."""

from flask import current_app, request
from flask_login import current_user

from hub import audit
from hub.api import blueprint, created, json_body, load_json, pagination
from hub.auth.permissions import Permission
from hub.auth.policies import can_act_on_report, teleexpertise_for, visible_teleexpertise
from hub.errors import ValidationFailed
from hub.http.access import access, needs_account
from hub.http.downloads import send
from hub.http.request import db, territory_zone, upload_dir
from hub.models import Professional, Report
from hub.schemas.base import load
from hub.schemas.scheduling import NoBodyIn
from hub.schemas.teleexpertise import AnswerIn, AnswerOut, AssignIn, DeclineIn, TeleexpertiseIn, TeleexpertiseOut
from workflows import reports, teleexpertise


def dump(request_row) -> dict:
    """The request, and its answer when there is one the caller may read."""
    body = TeleexpertiseOut().dump(request_row)
    answer = _readable_answer(request_row)
    body["answer"] = AnswerOut().dump(answer) if answer is not None else None
    return body


def _readable_answer(request_row) -> Report | None:
    """The latest version of the answer the caller may read, as a report's read (a draft is its author's
    alone: the others get the signed version it corrects, if any); the read is audited."""
    report = db().get(Report, request_row.answer_report_id) if request_row.answer_report_id else None
    while report is not None and not can_act_on_report(db(), current_user, report, "read"):
        report = db().get(Report, report.supersedes_id) if report.supersedes_id else None
    if report is not None:
        audit.record(db(), actor=current_user, action="report.read", target=report, cpts_id=report.cpts_id)
    return report


# Every view here is `needs_account`: the teleexpertise policies (hub.auth.policies) and the workflow read the
# caller's professional through `user.professional`.
@blueprint.post("/teleexpertise")
@access(Permission.TELEEXPERTISE_REQUEST)
@needs_account
def create_teleexpertise():
    data = load_json(TeleexpertiseIn())
    files = [(item["content"], item["filename"]) for item in data.pop("attachments")]
    row = teleexpertise.create(
        db(),
        current_user,
        data,
        upload_dir=upload_dir(),
        files=files,
        max_upload_bytes=current_app.config["HUB"]["UPLOAD_MAX_BYTES"],
        zone=territory_zone(),
    )
    return created(dump(row), "api.get_teleexpertise", teleexpertise_id=row.id)


@blueprint.get("/teleexpertise")
@access(Permission.TELEEXPERTISE_READ)
@needs_account
def list_teleexpertise():
    page, per_page = pagination()
    rows, total = teleexpertise.requests_of(
        db(), visible_teleexpertise(current_user), limit=per_page, offset=(page - 1) * per_page
    )
    audit.record(db(), actor=current_user, action="teleexpertise.list", details={"count": len(rows)})
    items = TeleexpertiseOut(exclude=("answer",)).dump([row.request for row in rows], many=True)
    return {"items": items, "page": page, "per_page": per_page, "total": total}


@blueprint.get("/teleexpertise/<int:teleexpertise_id>")
@access(Permission.TELEEXPERTISE_READ)
@needs_account
def get_teleexpertise(teleexpertise_id: int):
    return dump(teleexpertise_for(db(), current_user, teleexpertise_id, "read"))


def _act(teleexpertise_id: int, verb: str, schema, perform):
    """Load the request the caller may act on (404 otherwise), then read the body, then run the verb."""
    row = teleexpertise_for(db(), current_user, teleexpertise_id, verb)
    data = load(schema, json_body() if request.get_data() else {})
    perform(row, data)
    return dump(row)


@blueprint.post("/teleexpertise/<int:teleexpertise_id>/assign")
@access(Permission.TELEEXPERTISE_READ)  # the coordination assigns, an expert takes: the policy decides
@needs_account
def assign_teleexpertise(teleexpertise_id: int):
    def perform(row, data):
        expert = None
        if data.get("expert_id"):
            expert = db().get(Professional, data["expert_id"])
            if expert is None:
                raise ValidationFailed({"expert_id": "Expert·e inconnu·e dans la CPTS (un·e médecin)."})
        teleexpertise.assign(db(), current_user, row, expert=expert, zone=territory_zone())

    return _act(teleexpertise_id, "assign", AssignIn(), perform)


@blueprint.post("/teleexpertise/<int:teleexpertise_id>/start")
@access(Permission.TELEEXPERTISE_ANSWER)
@needs_account
def start_teleexpertise(teleexpertise_id: int):
    return _act(teleexpertise_id, "start", NoBodyIn(), lambda r, _d: teleexpertise.start(db(), current_user, r))


@blueprint.post("/teleexpertise/<int:teleexpertise_id>/decline")
@access(Permission.TELEEXPERTISE_ANSWER)
@needs_account
def decline_teleexpertise(teleexpertise_id: int):
    return _act(
        teleexpertise_id,
        "decline",
        DeclineIn(),
        lambda r, d: teleexpertise.decline(db(), current_user, r, reason=d["reason"]),
    )


@blueprint.post("/teleexpertise/<int:teleexpertise_id>/answer")
@access(Permission.TELEEXPERTISE_ANSWER)
@needs_account
def answer_teleexpertise(teleexpertise_id: int):
    def perform(row, data):
        reports.answer_request(
            db(),
            current_user,
            row,
            conclusion=data.get("conclusion"),
            recommendations=data.get("recommendations"),
            and_sign=data.get("sign", False),
            upload_dir=upload_dir(),
            zone=territory_zone(),
        )

    return _act(teleexpertise_id, "answer", AnswerIn(), perform)


@blueprint.post("/teleexpertise/<int:teleexpertise_id>/close")
@access(Permission.TELEEXPERTISE_REQUEST)
@needs_account
def close_teleexpertise(teleexpertise_id: int):
    return _act(teleexpertise_id, "close", NoBodyIn(), lambda r, _d: teleexpertise.close(db(), current_user, r))


@blueprint.get("/teleexpertise/<int:teleexpertise_id>/attachments/<int:file_id>")
@access(Permission.TELEEXPERTISE_READ)
@needs_account
def get_teleexpertise_attachment(teleexpertise_id: int, file_id: int):
    row = teleexpertise_for(db(), current_user, teleexpertise_id, "read")
    return send(teleexpertise.read_attachment(db(), current_user, row, file_id, upload_dir=upload_dir()))
