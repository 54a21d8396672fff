"""Referrals (adressages): the GP's « Nouvel adressage » form and « Mes adressages » list, the coordination's
triage queue (accept, reject with the reason, schedule into a free slot of the target program)."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from hub import audit
from hub.auth.permissions import Permission, has_permission
from hub.auth.policies import appointment_for, referral_for, visible_patients
from hub.documents import store
from hub.errors import Forbidden, NotFound, ValidationFailed
from hub.http.access import access
from hub.http.downloads import download, send
from hub.http.forms import attempt, form_data, load_form, undo_refused_change
from hub.http.request import db, territory_zone, upload_dir
from hub.http.uploads import read_upload, upload_limit
from hub.models import (
    ATTACHMENT_KIND_LABELS,
    CONSENT_KIND_LABELS,
    CONSENT_METHOD_LABELS,
    IDENTITY_STATUS_LABELS,
    PLACE_KIND_LABELS,
    PROFESSION_LABELS,
    REFERRAL_STATE_LABELS,
    URGENCY_LABELS,
    AttachmentKind,
    Patient,
    Profession,
    Professional,
    Referral,
    SessionProgram,
    Slot,
)
from hub.schemas.base import load
from hub.schemas.pathways import ACT_KIND_CHOICES, EligibilityForm
from hub.schemas.patient import PatientForm
from hub.schemas.referrals import (
    NEW_PATIENT_FIELDS,
    AttachmentKindIn,
    CandidatesArgs,
    ReferralForm,
    ReferralStateArgs,
    ScheduleForm,
    SubmitForm,
    scheduled_label,
)
from hub.schemas.scheduling import NoBodyForm, ReasonForm
from hub.services import identity
from hub.web.pages import load_query
from hub.web.patients import SEX_LABELS, duplicate_candidates
from workflows import accompaniment, eligibility, referrals

bp = Blueprint("referrals", __name__, url_prefix="/referrals")


@bp.context_processor
def labels():
    return {
        "REFERRAL_STATE_LABELS": REFERRAL_STATE_LABELS,
        "URGENCY_LABELS": URGENCY_LABELS,
        "ATTACHMENT_KIND_LABELS": ATTACHMENT_KIND_LABELS,
        "NEEDS": referrals.NEEDS,
        "scheduled_label": lambda appointment: scheduled_label(appointment, territory_zone()),
        "SEX_LABELS": SEX_LABELS,
        "IDENTITY_STATUS_LABELS": IDENTITY_STATUS_LABELS,
        "CONSENT_KIND_LABELS": CONSENT_KIND_LABELS,
        "CONSENT_METHOD_LABELS": CONSENT_METHOD_LABELS,
        "PLACE_KIND_LABELS": PLACE_KIND_LABELS,
        "needs_labels": lambda referral: [referrals.NEEDS.get(n, n) for n in referrals.needs_of(referral)],
    }


# --- the GP -----------------------------------------------------------------------------------------------


def _choices(patient_id: int | None = None) -> dict:
    session = db()
    patients = session.scalars(
        select(Patient).where(visible_patients(current_user)).order_by(Patient.birth_name).limit(500)
    ).all()
    programs = session.scalars(
        select(SessionProgram)
        .where(SessionProgram.cpts_id == current_user.cpts_id, SessionProgram.is_active.is_(True))
        .order_by(SessionProgram.name)
    ).all()
    specialists = list(
        session.scalars(
            select(Professional)
            .where(
                Professional.cpts_id == current_user.cpts_id,
                Professional.profession == Profession.SPECIALIST,
                Professional.is_active.is_(True),
            )
            .order_by(Professional.last_name)
        )
    )
    patient = session.get(Patient, patient_id) if patient_id else None
    proposed = referrals.proposed_specialist(session, patient) if patient is not None and patient in patients else None
    if proposed is not None:  # the patient's own cardiologist first (seed 004)
        specialists = [proposed] + [s for s in specialists if s.id != proposed.id]
    return {"patients": patients, "programs": programs, "specialists": specialists, "proposed": proposed}


def _new_page(values: dict, errors: dict | None = None, *, problem: str | None = None, status: int = 200, **duplicates):
    choices = _choices(_row_id(str(values.get("patient_id") or "")))
    return (
        render_template(
            "referrals/new.html",
            values=values,
            errors=errors or {},
            problem=problem,
            kinds=list(AttachmentKind),
            urgency_options=[(u.value, label) for u, label in URGENCY_LABELS.items()],
            sex_options=list(SEX_LABELS.items()),
            candidates=duplicates.get("candidates", []),
            hidden_candidates=duplicates.get("hidden_candidates", 0),
            **choices,
        ),
        status,
    )


def _row_id(text: str) -> int | None:
    """The patient id carried in the URL or typed, when it can be a row's: ASCII digits ("²" is a digit for
    str.isdigit, not for int()) within 32 bits (beyond, the database refuses the query)."""
    return int(text) if text.isascii() and text.isdigit() and int(text) <= 2**31 - 1 else None


@bp.route("/new", methods=["GET", "POST"])
@access(Permission.REFERRALS_WRITE)
def new():
    if request.method == "GET":
        return _new_page({"patient_id": request.args.get("patient_id", ""), "urgency": "routine"})
    raw = form_data()
    raw["needs"] = request.form.getlist("needs")
    values = dict(raw)

    def perform():
        data, new_patient, confirm = _load_new_form(raw)
        send = data.pop("submit", "send") != "draft"
        consent_on = data.pop("consent_collected_on", None)
        referral = referrals.create(db(), current_user, data, new_patient=new_patient, confirm_new_patient=confirm)
        _attach_uploads(referral)
        if send:
            referrals.submit(db(), current_user, referral, consent_collected_on=consent_on, zone=territory_zone())
        return send

    send, refused = attempt(perform)
    if isinstance(refused, identity.PossibleDuplicate):
        return _new_page(values, problem=refused.detail, status=refused.status, **duplicate_candidates(refused))
    if refused:
        undo_refused_change("referral.form")
        return _new_page(values, refused.errors, problem=refused.detail, status=refused.status)
    flash("Adressage envoyé à la coordination." if send else "Brouillon enregistré.", "success")
    return redirect(url_for("referrals.mine"))


def _load_new_form(raw: dict) -> tuple[dict, dict | None, bool]:
    """The referral's fields, and the new patient's traits when the GP typed them instead of choosing a patient
    (or a candidate shown as a possible duplicate); both are checked so that every error shows at once."""
    errors: dict[str, str] = {}
    data: dict = {}
    new_patient = None
    try:
        data = load(ReferralForm(), raw)
    except ValidationFailed as exc:
        errors |= exc.errors
    loaded = not errors
    traits_typed = any(raw.get(name, "").strip() for name in NEW_PATIENT_FIELDS)
    if data.get("candidate_id"):
        data["patient_id"] = data["candidate_id"]
    elif traits_typed:
        if not has_permission(current_user, Permission.PATIENTS_CREATE):
            raise Forbidden("Vous ne pouvez pas créer de patient.")
        try:
            new_patient = load(PatientForm(only=NEW_PATIENT_FIELDS), raw)
        except ValidationFailed as exc:
            errors |= exc.errors
    if loaded and raw.get("submit", "send") != "draft":
        missing = referrals.missing_to_send(db(), current_user, data, new_patient=traits_typed)
        errors = missing | errors  # a field's own error (a bad date) says more than « missing »
    if errors:
        raise ValidationFailed(errors)
    data.pop("candidate_id", None)
    return data, new_patient, data.pop("duplicates_checked", False)


def _attach_uploads(referral) -> None:
    """Each non-empty file field `file_<n>` with its `kind_<n>`."""
    for name, upload in request.files.items(multi=True):
        if not upload or not upload.filename:
            continue
        suffix = name.removeprefix("file")
        try:
            data = load(AttachmentKindIn(), {"kind": request.form.get(f"kind{suffix}", "other")})
            referrals.attach(
                db(),
                current_user,
                referral,
                kind=data["kind"],
                content=read_upload(upload),
                filename=upload.filename,
                upload_dir=upload_dir(),
                max_bytes=upload_limit(),
            )
        except ValidationFailed as exc:
            raise ValidationFailed({name: next(iter(exc.errors.values()))}) from exc


def _mine_page(values=None, errors=None, *, problem=None, status=200, failed_id=None, state=None):
    rows = []
    if current_user.professional_id is not None:
        mine = (Referral.cpts_id == current_user.cpts_id) & (Referral.author_id == current_user.professional_id)
        rows, _total = referrals.referrals_of(db(), mine & (Referral.state == state) if state else mine)
    return (
        render_template(
            "referrals/mine.html",
            rows=rows,
            values=values or {},
            errors=errors or {},
            problem=problem,
            failed_id=failed_id,
            state=state,
        ),
        status,
    )


@bp.get("/mine")
@access(Permission.REFERRALS_WRITE)
def mine():
    """The GP's referrals, or those in one state (`?state=submitted`: the counts of the home page lead here)."""
    state = load_query(ReferralStateArgs())[0].get("state")
    return _mine_page(state=state)


@bp.post("/<int:referral_id>/submit")
@access(Permission.REFERRALS_WRITE)
def submit(referral_id: int):
    """Send a saved draft, with the date the GP collected the patient's consent."""
    referral = referral_for(db(), current_user, referral_id, "submit")
    data, values, errors = load_form(SubmitForm())
    _, refused = attempt(
        lambda: referrals.submit(
            db(), current_user, referral, consent_collected_on=data.get("consent_collected_on"), zone=territory_zone()
        ),
        form_errors=errors,
        read="referral.list",
    )
    if refused:
        return _mine_page(values, refused.errors, problem=refused.detail, status=refused.status, failed_id=referral_id)
    flash("Adressage envoyé à la coordination.", "success")
    return redirect(url_for("referrals.mine"))


# --- the coordination -------------------------------------------------------------------------------------


def _triage_page(values=None, errors=None, *, problem=None, status=200, failed_id=None):
    rows = referrals.triage_queue(db(), current_user.cpts_id)
    accepted, _total = referrals.referrals_of(
        db(), (Referral.cpts_id == current_user.cpts_id) & (Referral.state == referrals.S.ACCEPTED)
    )
    return (
        render_template(
            "referrals/triage.html",
            rows=rows,
            accepted=accepted,
            values=values or {},
            errors=errors or {},
            problem=problem,
            failed_id=failed_id,
        ),
        status,
    )


@bp.get("/triage")
@access(Permission.REFERRALS_TRIAGE)
def triage():
    return _triage_page()


def _action(referral_id: int, verb: str, schema, perform, *, then: str = "triage"):
    """A triage verb from the queue or the referral's page: refused, the referral's page again with the errors
    next to their fields; done, the next step — the queue, or the referral's page (`then="show"`)."""
    referral = referral_for(db(), current_user, referral_id, verb)
    data, values, errors = load_form(schema)
    message, refused = attempt(lambda: perform(referral, data), form_errors=errors, read="referral.read")
    if refused:
        return _show_page(referral, form=verb, values=values, refusal=refused)
    assert message is not None  # not refused: attempt returned perform's message
    flash(message, "success")
    if then == "show":
        return redirect(url_for("referrals.show", referral_id=referral.id, _anchor="programmer"))
    return redirect(url_for("referrals.triage"))


@bp.post("/<int:referral_id>/accept")
@access(Permission.REFERRALS_TRIAGE)
def accept(referral_id: int):
    def perform(referral, _data):
        referrals.accept(db(), current_user, referral)
        return "Adressage accepté : vérifiez l'éligibilité, puis choisissez le créneau, le lieu et l'IDEL."

    return _action(referral_id, "accept", NoBodyForm(), perform, then="show")


@bp.post("/<int:referral_id>/reject")
@access(Permission.REFERRALS_TRIAGE)
def reject(referral_id: int):
    def perform(referral, data):
        referrals.reject(db(), current_user, referral, reason=data["reason"])
        return "Adressage refusé : le médecin en est informé."

    return _action(referral_id, "reject", ReasonForm(), perform)


@bp.post("/<int:referral_id>/schedule")
@access(Permission.REFERRALS_TRIAGE)
def schedule(referral_id: int):
    def perform(referral, data):
        appointment = referrals.schedule(
            db(),
            current_user,
            referral,
            slot=db().get(Slot, data["slot_id"]),
            place_kind=data.get("place_kind"),
            accompanying=referrals.accompanying_by_id(db(), referral, data.get("accompanying_id")),
            upload_dir=upload_dir(),
        )
        who = f", accompagné par {appointment.accompanying.full_name}" if appointment.accompanying else ""
        return f"Adressage de {referral.patient.display_name} {scheduled_label(appointment, territory_zone())}{who}."

    return _action(referral_id, "schedule", ScheduleForm(), perform)


@bp.post("/<int:referral_id>/cancel")
@access(Permission.REFERRALS_READ)
def cancel(referral_id: int):
    referral = referral_for(db(), current_user, referral_id, "cancel")
    author = referral.author_id == current_user.professional_id
    data, values, errors = load_form(ReasonForm())
    _, refused = attempt(
        lambda: referrals.cancel(db(), current_user, referral, reason=data["reason"]),
        form_errors=errors,
        read="referral.list" if author else "referral.triage",
    )
    if refused:
        show_again = _mine_page if author else _triage_page
        return show_again(values, refused.errors, problem=refused.detail, status=refused.status, failed_id=referral_id)
    flash("Adressage annulé.", "success")
    return redirect(url_for("referrals.mine" if author else "referrals.triage"))


# --- the referral's page ----------------------------------------------------------------------------------


@bp.get("/<int:referral_id>")
@access(Permission.REFERRALS_READ)
def show(referral_id: int):
    """The referral's page: the letter, its documents, the patient's needs, the consent and the history; for the
    coordination, the triage on the same page (accept, the eligibility checklist, the slot, place and IDEL)."""
    return _show_page(referral_for(db(), current_user, referral_id, "read"))


@bp.post("/<int:referral_id>/eligibility")
@access(Permission.REFERRALS_TRIAGE)
def assess_eligibility(referral_id: int):
    """The HAS checklist filled on the referral's page, pre-filled from the referral: back to the same page."""
    referral = referral_for(db(), current_user, referral_id, "schedule")
    data, values, errors = load_form(EligibilityForm())
    assessment, refused = attempt(
        lambda: eligibility.assess(db(), current_user, referral.patient, data, zone=territory_zone()),
        form_errors=errors,
        read="referral.read",
        target=referral,
    )
    if refused:
        return _show_page(referral, form="eligibility", values=values, refusal=refused)
    assert assessment is not None  # not refused: attempt returned the assessment
    flash(f"Éligibilité enregistrée : {eligibility.OUTCOME_LABELS[assessment.outcome]}.", "success")
    return redirect(url_for("referrals.show", referral_id=referral.id, _anchor="programmer"))


def _show_page(referral, *, form: str | None = None, values=None, refusal=None):
    detail = referrals.detail(db(), referral)
    context = {
        "detail": detail,
        "referral": referral,
        "can_triage": has_permission(current_user, Permission.REFERRALS_TRIAGE),
        "form": form,
        "values": values or {},
        "errors": refusal.errors if refusal else {},
        "problem": refusal.detail if refusal else None,
    }
    if context["can_triage"] and referrals.MACHINE.allows("schedule", referral.state):
        context |= _scheduling(
            referral,
            values if form == "eligibility" else None,
            refused_choice=values if form == "schedule" else None,
        )
    return render_template("referrals/show.html", **context), refusal.status if refusal else 200


def _scheduling(referral, eligibility_values: dict | None, *, refused_choice: dict | None = None) -> dict:
    """The triage's next step on the page: the eligibility checklist until the patient's latest allows the
    session, then the free slots, the place the needs call for and the ranked accompanying professionals. After a
    refused « Programmer », the slot and place that were sent, not the query's."""
    args = load_query(CandidatesArgs())[0]
    if refused_choice:
        sent = {"slot": refused_choice.get("slot_id") or None, "place_kind": refused_choice.get("place_kind") or None}
        if not CandidatesArgs().validate(sent):  # what was typed, when it reads as a slot and a place
            args = CandidatesArgs().load(sent)
    free = referrals.free_slots_for(db(), [referral])[referral.id]
    slot = next((s for s in free if s.id == args.get("slot")), free[0] if free else None)
    program = referrals.target_program(db(), referral, slot)
    step = {"free": free, "slot": slot}
    if not referrals.eligibility_done(db(), referral, program):
        prefill = referrals.eligibility_prefill(referral, program)
        return step | {
            "eligibility_values": eligibility_values or prefill,
            "eligibility": {
                "criteria": eligibility.CRITERIA,
                "care_nature": eligibility.CARE_NATURE,
                "frailty": eligibility.FRAILTY,
                "alternatives": eligibility.ALTERNATIVES,
                "act_kinds": [(kind, eligibility.ACT_KINDS[kind]) for kind in ACT_KIND_CHOICES],
                "professions": [(p.value, PROFESSION_LABELS[p]) for p in Profession if p is not Profession.COORDINATOR],
            },
        }
    if slot is None:
        return step
    suggested = accompaniment.suggested_place(slot.program, referrals.needs_of(referral))
    places = accompaniment.place_choices(slot.program)
    asked = args.get("place_kind")
    place = asked if asked in places else suggested
    return step | {
        "place": place,
        "places": places,
        "suggestions": accompaniment.suggest(db(), slot=slot, patient=referral.patient, place_kind=place),
        "suggested_place": suggested,
    }


# --- documents --------------------------------------------------------------------------------------------


@bp.get("/<int:referral_id>/attachments/<int:attachment_id>")
@access(Permission.REFERRALS_READ)
def attachment(referral_id: int, attachment_id: int):
    referral = referral_for(db(), current_user, referral_id, "read")
    return send(referrals.read_attachment(db(), current_user, referral, attachment_id, upload_dir=upload_dir()))


@bp.get("/<int:referral_id>/letter.pdf")
@access(Permission.REFERRALS_READ)
def letter(referral_id: int):
    """The referral letter (document type 96349-6): the frozen one once scheduled, else as it reads now."""
    referral = referral_for(db(), current_user, referral_id, "read")
    return _serve_letter(referral)


@bp.get("/appointments/<int:appointment_id>/letter.pdf")
@access(Permission.APPOINTMENTS_READ)
def appointment_letter(appointment_id: int):
    """The appointment's referral letter, to those who may read the patient's record for it (its performer, its
    IDEL, the coordination; not an IDEL it is only offered to), as it was frozen when the referral was scheduled."""
    appointment = appointment_for(db(), current_user, appointment_id, "read_record")
    referral = referrals.letters_by_appointment(db(), [appointment.id]).get(appointment.id)
    if referral is None:
        raise NotFound(
            "Ce rendez-vous n'a pas de lettre d'adressage.",
            audit_action="referral.letter_read",
            audit_target=("appointments", appointment_id),
        )
    return _serve_letter(referral)


def _serve_letter(referral):
    audit.record(
        db(),
        actor=current_user,
        action="referral.letter_read",
        target=referral,
        cpts_id=referral.cpts_id,
        details={"frozen": referral.letter_sha256 is not None},
    )
    if referral.letter_sha256 is not None:
        content = store.read_stored(upload_dir(), referral.letter_sha256)
    else:
        content = referrals.letter_of(db(), referral, zone=territory_zone())
    return download(content, "application/pdf", f"adressage-{referral.id}.pdf")
