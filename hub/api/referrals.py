"""/api/v1/referrals: the GP's referrals and the coordination's triage; attachments as multipart."""

from flask import request
from flask_login import current_user

from hub import audit
from hub.api import blueprint, created, json_body, load_json, pagination
from hub.auth.permissions import Permission, has_permission
from hub.auth.policies import referral_for, visible_referrals
from hub.errors import Forbidden, ValidationFailed
from hub.http.access import access
from hub.http.downloads import send
from hub.http.request import db, territory_zone, upload_dir
from hub.http.uploads import read_upload, upload_limit
from hub.models import PLACE_KIND_LABELS, Appointment, Slot
from hub.schemas.base import load
from hub.schemas.referrals import (
    AttachmentKindIn,
    AttachmentOut,
    CandidatesArgs,
    CandidatesOut,
    ReferralIn,
    ReferralUpdateIn,
    ScheduleIn,
    SubmitIn,
    dump_referral,
)
from hub.schemas.scheduling import NoBodyIn, ReasonIn
from workflows import accompaniment, referrals


def _body(referral, *, detail: bool = False):
    appointment = db().get(Appointment, referral.appointment_id) if referral.appointment_id else None
    more = referrals.detail(db(), referral) if detail else None
    return dump_referral(referral, appointment, territory_zone(), detail=more)


@blueprint.post("/referrals")
@access(Permission.REFERRALS_WRITE)
def create_referral():
    data = load_json(ReferralIn())
    new_patient, confirm = data.pop("patient", None), data.pop("confirm_new_patient")
    if new_patient is not None and not has_permission(current_user, Permission.PATIENTS_CREATE):
        raise Forbidden("Vous ne pouvez pas créer de patient.")
    referral = referrals.create(db(), current_user, data, new_patient=new_patient, confirm_new_patient=confirm)
    return created(_body(referral), "api.get_referral", referral_id=referral.id)


@blueprint.get("/referrals")
@access(Permission.REFERRALS_READ)
def list_referrals():
    page, per_page = pagination()
    rows, total = referrals.referrals_of(
        db(), visible_referrals(current_user), limit=per_page, offset=(page - 1) * per_page
    )
    audit.record(db(), actor=current_user, action="referral.list", details={"count": len(rows)})
    items = [dump_referral(row.referral, row.appointment, territory_zone()) for row in rows]
    return {"items": items, "page": page, "per_page": per_page, "total": total}


@blueprint.get("/referrals/<int:referral_id>")
@access(Permission.REFERRALS_READ)
def get_referral(referral_id: int):
    """The referral with what its page shows: needs and consent in words, the history of its states."""
    return _body(referral_for(db(), current_user, referral_id, "read"), detail=True)


@blueprint.get("/referrals/<int:referral_id>/candidates")
@access(Permission.REFERRALS_TRIAGE)
def referral_candidates(referral_id: int):
    """Who may accompany the patient at `?slot=` (and `place_kind=`): the patient's own IDEL first, then the free
    IDELs by distance from the patient's commune, each with the reason of its rank; an officine's pharmacists
    for an officine's session."""
    referral = referral_for(db(), current_user, referral_id, "schedule")
    args = load(CandidatesArgs(), request.args.to_dict())
    if args.get("slot") is None:
        raise ValidationFailed({"slot": "Indiquez le créneau (slot)."})
    slot = referrals.slot_for(db(), referral, args["slot"])
    place = args.get("place_kind") or accompaniment.suggested_place(slot.program, referrals.needs_of(referral))
    found = accompaniment.suggest(db(), slot=slot, patient=referral.patient, place_kind=place)
    return CandidatesOut().dump(
        {
            "slot_id": slot.id,
            "place_kind": place.value,
            "place_label": PLACE_KIND_LABELS[place],
            "own_idel_note": found.own_note,
            "items": found.candidates,
        }
    )


@blueprint.patch("/referrals/<int:referral_id>")
@access(Permission.REFERRALS_WRITE)
def update_referral(referral_id: int):
    referral = referral_for(db(), current_user, referral_id, "update")
    referrals.update(db(), current_user, referral, load_json(ReferralUpdateIn()))
    return _body(referral)


def _act(referral_id: int, verb: str, schema, perform):
    """Load the referral the caller may act on (404 otherwise), then read the body, then run the verb."""
    referral = referral_for(db(), current_user, referral_id, verb)
    data = load(schema, json_body() if request.get_data() else {})
    perform(referral, data)
    return _body(referral)


@blueprint.post("/referrals/<int:referral_id>/submit")
@access(Permission.REFERRALS_WRITE)
def submit_referral(referral_id: int):
    return _act(
        referral_id,
        "submit",
        SubmitIn(),
        lambda r, d: referrals.submit(
            db(), current_user, r, consent_collected_on=d.get("consent_collected_on"), zone=territory_zone()
        ),
    )


@blueprint.post("/referrals/<int:referral_id>/accept")
@access(Permission.REFERRALS_TRIAGE)
def accept_referral(referral_id: int):
    return _act(referral_id, "accept", NoBodyIn(), lambda r, _d: referrals.accept(db(), current_user, r))


@blueprint.post("/referrals/<int:referral_id>/reject")
@access(Permission.REFERRALS_TRIAGE)
def reject_referral(referral_id: int):
    return _act(
        referral_id, "reject", ReasonIn(), lambda r, d: referrals.reject(db(), current_user, r, reason=d["reason"])
    )


@blueprint.post("/referrals/<int:referral_id>/schedule")
@access(Permission.REFERRALS_TRIAGE)
def schedule_referral(referral_id: int):
    def perform(referral, data):
        referrals.schedule(
            db(),
            current_user,
            referral,
            slot=db().get(Slot, data["slot_id"]),
            place_kind=data.get("place_kind"),
            accompanying=referrals.accompanying_by_id(db(), referral, data.get("accompanying_id")),
            upload_dir=upload_dir(),
        )

    return _act(referral_id, "schedule", ScheduleIn(), perform)


@blueprint.post("/referrals/<int:referral_id>/cancel")
@access(Permission.REFERRALS_READ)
def cancel_referral(referral_id: int):
    return _act(
        referral_id, "cancel", ReasonIn(), lambda r, d: referrals.cancel(db(), current_user, r, reason=d["reason"])
    )


def read_multipart() -> tuple[dict, bytes, str | None]:
    """The multipart form's kind and file."""
    upload = request.files.get("file")
    raw = {"kind": request.form.get("kind", "")}
    errors = {}
    if upload is None or not upload.filename:
        errors["file"] = "Joignez un fichier (PDF, PNG ou JPEG)."
    try:
        data = load(AttachmentKindIn(), raw)
    except ValidationFailed as exc:
        errors |= exc.errors
    if errors:
        raise ValidationFailed(errors)
    assert upload is not None  # refused above without a file
    return data, read_upload(upload), upload.filename


@blueprint.post("/referrals/<int:referral_id>/attachments")
@access(Permission.REFERRALS_WRITE)
def add_referral_attachment(referral_id: int):
    referral = referral_for(db(), current_user, referral_id, "attach")
    data, content, filename = read_multipart()
    attachment = referrals.attach(
        db(),
        current_user,
        referral,
        kind=data["kind"],
        content=content,
        filename=filename,
        upload_dir=upload_dir(),
        max_bytes=upload_limit(),
    )
    return created(
        AttachmentOut().dump(attachment),
        "api.get_referral_attachment",
        referral_id=referral.id,
        attachment_id=attachment.id,
    )


@blueprint.get("/referrals/<int:referral_id>/attachments/<int:attachment_id>")
@access(Permission.REFERRALS_READ)
def get_referral_attachment(referral_id: int, attachment_id: int):
    referral = referral_for(db(), current_user, referral_id, "read")
    return send(referrals.read_attachment(db(), current_user, referral, attachment_id, upload_dir=upload_dir()))
