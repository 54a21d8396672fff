"""Téléexpertise pages: « Demande de téléexpertise » (with the over-cap confirmation step), « Mes demandes de
téléexpertise », the expert's « Téléexpertises reçues » (take, decline, answer), the request page and the
answer form (conclusion and recommendations, then « Signer et envoyer »)."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hub.auth.permissions import Permission, has_permission
from hub.auth.policies import can_act_on_teleexpertise, can_view_patient, teleexpertise_for, visible_patients
from hub.documents import store
from hub.errors import NotFound, ValidationFailed
from hub.formatting import french_datetime
from hub.http.access import access
from hub.http.downloads import download, send
from hub.http.forms import attempt, form_data, load_form
from hub.http.request import db, territory_zone, upload_dir
from hub.http.uploads import read_upload, upload_limit
from hub.models import (
    TELEEXPERTISE_STATE_LABELS,
    ConsentKind,
    Patient,
    Professional,
    Report,
    TeleexpertiseRequest,
)
from hub.schemas.base import load
from hub.schemas.scheduling import NoBodyForm
from hub.schemas.teleexpertise import MAX_ATTACHMENTS, AnswerForm, AssignForm, DeclineForm, TeleexpertiseForm
from hub.services.identity import has_valid_consent
from workflows import reports, teleexpertise

bp = Blueprint("teleexpertise", __name__, url_prefix="/teleexpertise")


def time_left(delta) -> str:
    """« 3 j 4 h », « 5 h », « dépassé »."""
    if delta is None:
        return ""
    if delta.total_seconds() <= 0:
        return "délai dépassé"
    days, hours = delta.days, delta.seconds // 3600
    return f"{days} j {hours} h" if days else f"{hours} h {delta.seconds % 3600 // 60:02d}"


@bp.context_processor
def labels():
    return {
        "TELEEXPERTISE_STATE_LABELS": TELEEXPERTISE_STATE_LABELS,
        "when": lambda value: french_datetime(value, territory_zone()),
        "time_left": time_left,
    }


# --- the requester ----------------------------------------------------------------------------------------


def _choices() -> dict:
    session = db()
    patients = session.scalars(
        select(Patient)
        .where(visible_patients(current_user))
        .options(selectinload(Patient.consents))
        .order_by(*Patient.display_order())
        .limit(500)
    ).all()
    consenting = {p.id for p in patients if has_valid_consent(p, ConsentKind.TELEHEALTH)}
    experts = [e for e in teleexpertise.experts(session, current_user.cpts_id) if e.id != current_user.professional_id]
    return {
        "patients": patients,
        "consenting": consenting,
        "experts": experts,
        "specialties": teleexpertise.specialties(session, current_user.cpts_id),
        "urgency_options": [(u.value, label) for u, label in teleexpertise.URGENCY_CHOICES.items()],
    }


def _new_page(values: dict, errors=None, *, problem=None, over_cap=None, status: int = 200):
    return (
        render_template(
            "teleexpertise/new.html",
            values=values,
            errors=errors or {},
            problem=problem,
            over_cap=over_cap,
            max_attachments=MAX_ATTACHMENTS,
            **_choices(),
        ),
        status,
    )


@bp.route("/new", methods=["GET", "POST"])
@access(Permission.TELEEXPERTISE_REQUEST)
def new():
    if request.method == "GET":
        return _new_page({"patient_id": request.args.get("patient_id", ""), "urgency": "routine"})
    values = form_data()
    names, files = _uploads()
    row, refused = attempt(lambda: _create(load(TeleexpertiseForm(), values), names, files), read="teleexpertise.form")
    if isinstance(refused, teleexpertise.OverYearlyCap):
        return _new_page(values, problem=None, over_cap=refused.detail, status=refused.status)
    if refused:
        return _new_page(values, refused.errors, problem=refused.detail, status=refused.status)
    assert row is not None  # not refused: attempt returned the request
    flash("Demande de téléexpertise envoyée.", "success")
    return redirect(url_for("teleexpertise.show", teleexpertise_id=row.id))


def _uploads() -> tuple[list[str], list[tuple[bytes, str]]]:
    """The non-empty file fields `file<n>`: their names, and their content (read one byte over the limit)."""
    uploads = [
        (name, read_upload(upload), upload.filename)
        for name, upload in request.files.items(multi=True)
        if upload and upload.filename and name.startswith("file")
    ]
    return [name for name, _, _ in uploads], [(content, filename) for _, content, filename in uploads]


def _create(data: dict, names: list[str], files: list[tuple[bytes, str]]):
    """The workflow checks the files (type, size) as `attachments.<n>`: shown next to the form's file field."""
    try:
        return teleexpertise.create(
            db(),
            current_user,
            data,
            upload_dir=upload_dir(),
            files=files,
            max_upload_bytes=upload_limit(),
            zone=territory_zone(),
        )
    except ValidationFailed as exc:
        by_field = {"attachments": "file1"} | {f"attachments.{n}": name for n, name in enumerate(names)}
        raise ValidationFailed({by_field.get(key, key): message for key, message in exc.errors.items()}) from exc


def _list_page(title: str, where, *, show_requester: bool):
    rows, total = teleexpertise.requests_of(db(), where)
    return render_template(
        "teleexpertise/list.html", title=title, rows=rows, total=total, show_requester=show_requester
    )


@bp.get("/mine")
@access(Permission.TELEEXPERTISE_REQUEST)
def mine():
    me = current_user.professional_id or 0
    where = (TeleexpertiseRequest.cpts_id == current_user.cpts_id) & (TeleexpertiseRequest.requester_id == me)
    return _list_page("Mes demandes de téléexpertise", where, show_requester=False)


@bp.get("/cpts")
@access(Permission.TELEEXPERTISE_ASSIGN)
def everything():
    where = TeleexpertiseRequest.cpts_id == current_user.cpts_id
    return _list_page("Téléexpertises de la CPTS", where, show_requester=True)


@bp.post("/<int:teleexpertise_id>/close")
@access(Permission.TELEEXPERTISE_REQUEST)
def close(teleexpertise_id: int):
    return _action(
        teleexpertise_id,
        "close",
        NoBodyForm(),
        lambda r, _d: teleexpertise.close(db(), current_user, r),
        "Demande clôturée.",
    )


# --- the expert -------------------------------------------------------------------------------------------


@bp.get("/inbox")
@access(Permission.TELEEXPERTISE_ANSWER)
def inbox():
    me = db().get(Professional, current_user.professional_id) if current_user.professional_id else None
    rows = teleexpertise.inbox(db(), me) if me is not None else []
    return render_template("teleexpertise/inbox.html", rows=rows)


def _action(teleexpertise_id: int, verb: str, schema, perform, message: str, *, done=None):
    """One verb from a page: done → a French confirmation and Post/Redirect/Get; refused → the request page
    again with the reason (the refused change undone, the page's read audited)."""
    row = teleexpertise_for(db(), current_user, teleexpertise_id, verb)
    data, values, errors = load_form(schema)
    _, refused = attempt(
        lambda: perform(row, data),
        form_errors=errors,
        read="teleexpertise.read",
        target=("teleexpertise_requests", teleexpertise_id),
    )
    if refused:
        row = db().get_one(TeleexpertiseRequest, teleexpertise_id)  # loaded above, the refusal undone
        if not can_act_on_teleexpertise(current_user, row, "read"):  # e.g. another expert of the pool took it
            flash(refused.detail, "danger")
            return redirect(url_for("teleexpertise.inbox"))
        return _show_page(row, values=values, errors=refused.errors, problem=refused.detail, status=refused.status)
    flash(message, "success")
    return redirect(done or url_for("teleexpertise.show", teleexpertise_id=teleexpertise_id))


@bp.post("/<int:teleexpertise_id>/take")
@access(Permission.TELEEXPERTISE_ANSWER)
def take(teleexpertise_id: int):
    return _action(
        teleexpertise_id,
        "assign",
        NoBodyForm(),
        lambda r, _d: teleexpertise.assign(db(), current_user, r, zone=territory_zone()),
        "Demande prise en charge : elle vous est attribuée.",
    )


@bp.post("/<int:teleexpertise_id>/assign")
@access(Permission.TELEEXPERTISE_ASSIGN)
def assign(teleexpertise_id: int):
    def perform(row, data):
        expert = db().get(Professional, data.get("expert_id") or 0)
        if expert is None:
            raise ValidationFailed({"expert_id": "Choisissez l'expert·e."})
        teleexpertise.assign(db(), current_user, row, expert=expert, zone=territory_zone())

    return _action(teleexpertise_id, "assign", AssignForm(), perform, "Demande attribuée.")


@bp.post("/<int:teleexpertise_id>/decline")
@access(Permission.TELEEXPERTISE_ANSWER)
def decline(teleexpertise_id: int):
    return _action(
        teleexpertise_id,
        "decline",
        DeclineForm(),
        lambda r, d: teleexpertise.decline(db(), current_user, r, reason=d["reason"]),
        "Demande déclinée : le demandeur en est informé.",
        done=url_for("teleexpertise.inbox"),
    )


@bp.post("/<int:teleexpertise_id>/respond")
@access(Permission.TELEEXPERTISE_ANSWER)
def respond(teleexpertise_id: int):
    """« Répondre »: take the request if it is named to me, start it, and open the draft answer."""
    return _action(
        teleexpertise_id,
        "answer",
        NoBodyForm(),
        lambda r, _d: reports.begin_answer(db(), current_user, r, zone=territory_zone()),
        "Rédigez votre réponse.",
        done=url_for("teleexpertise.answer_form", teleexpertise_id=teleexpertise_id),
    )


def _answer_page(row, draft, values=None, errors=None, *, problem=None, status=200):
    values = values if values is not None else {"conclusion": draft.conclusion, "recommendations": draft.follow_up}
    return (
        render_template(
            "teleexpertise/answer.html", row=row, draft=draft, values=values, errors=errors or {}, problem=problem
        ),
        status,
    )


def _draft_of(row) -> Report | None:
    draft = db().get(Report, row.answer_report_id) if row.answer_report_id else None
    return draft if draft is not None and draft.signed_at is None else None


@bp.route("/<int:teleexpertise_id>/answer", methods=["GET", "POST"])
@access(Permission.TELEEXPERTISE_ANSWER)
def answer_form(teleexpertise_id: int):
    row = teleexpertise_for(db(), current_user, teleexpertise_id, "answer")
    draft = _draft_of(row)
    if draft is None:
        flash("Cliquez sur « Répondre » pour commencer votre réponse.", "info")
        return redirect(url_for("teleexpertise.show", teleexpertise_id=teleexpertise_id))
    if request.method == "GET":
        audit_read(row)
        return _answer_page(row, draft)
    data, values, errors = load_form(AnswerForm())
    sign = values.get("action") == "sign"

    def perform():
        if sign and not (data.get("conclusion") or "").strip():
            raise ValidationFailed({"conclusion": "Rédigez votre conclusion avant de signer."})
        reports.answer_request(
            db(),
            current_user,
            row,
            conclusion=data.get("conclusion"),
            recommendations=data.get("recommendations"),
            and_sign=sign,
            upload_dir=upload_dir(),
            zone=territory_zone(),
        )

    _, refused = attempt(
        perform, form_errors=errors, read="teleexpertise.read", target=("teleexpertise_requests", teleexpertise_id)
    )
    if refused:
        row = db().get_one(TeleexpertiseRequest, teleexpertise_id)  # loaded above, the refusal undone
        page = {"problem": refused.detail, "status": refused.status}
        return _answer_page(row, db().get(Report, draft.id), values, refused.errors, **page)
    flash("Réponse signée et envoyée au demandeur." if sign else "Brouillon enregistré.", "success")
    if sign:
        return redirect(url_for("teleexpertise.show", teleexpertise_id=teleexpertise_id))
    return redirect(url_for("teleexpertise.answer_form", teleexpertise_id=teleexpertise_id))


def audit_read(row) -> None:
    from hub import audit

    audit.record(db(), actor=current_user, action="teleexpertise.read", target=row, cpts_id=row.cpts_id)


# --- the request page --------------------------------------------------------------------------------------


def _show_page(row, *, values=None, errors=None, problem=None, status=200):
    answer_report = db().get(Report, row.answer_report_id) if row.answer_report_id else None
    if answer_report is not None and answer_report.signed_at is None and not _is_author(answer_report):
        answer_report = None  # a draft is the expert's alone
    verbs = {
        verb for verb in ("assign", "decline", "answer", "close") if can_act_on_teleexpertise(current_user, row, verb)
    }
    pool = teleexpertise.pool_members(db(), row) if "assign" in verbs and row.specialty else []
    return (
        render_template(
            "teleexpertise/show.html",
            row=row,
            answer=answer_report,
            verbs=verbs,
            is_coordination=has_permission(current_user, Permission.TELEEXPERTISE_ASSIGN),
            pool=pool,
            experts=teleexpertise.experts(db(), row.cpts_id) if "assign" in verbs else [],
            may_see_record=can_view_patient(db(), current_user, row.patient),
            values=values or {},
            errors=errors or {},
            problem=problem,
        ),
        status,
    )


def _is_author(report: Report) -> bool:
    return current_user.professional_id is not None and report.author_id == current_user.professional_id


@bp.get("/<int:teleexpertise_id>")
@access(Permission.TELEEXPERTISE_READ)
def show(teleexpertise_id: int):
    return _show_page(teleexpertise_for(db(), current_user, teleexpertise_id, "read"))


@bp.get("/<int:teleexpertise_id>/attachments/<int:file_id>")
@access(Permission.TELEEXPERTISE_READ)
def attachment(teleexpertise_id: int, file_id: int):
    row = teleexpertise_for(db(), current_user, teleexpertise_id, "read")
    return send(teleexpertise.read_attachment(db(), current_user, row, file_id, upload_dir=upload_dir()))


@bp.get("/<int:teleexpertise_id>/document.pdf")
@access(Permission.TELEEXPERTISE_READ)
def document(teleexpertise_id: int):
    """The request document (75496-0) as it was frozen and sent at submission; its download is audited."""
    row = teleexpertise_for(db(), current_user, teleexpertise_id, "read")
    if row.pdf_sha256 is None:
        raise NotFound("Document introuvable.")
    content = store.read_stored(upload_dir(), row.pdf_sha256)
    return download(content, "application/pdf", f"demande-teleexpertise-{row.id}.pdf")
