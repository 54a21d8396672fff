"""Patient pages: search, creation under identity vigilance, the record and its actions (identity checks,
consents, care team), edition."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from hub import audit
from hub.auth.guards import consent_for, patient_for
from hub.auth.permissions import Permission
from hub.auth.policies import can_view_patient, visible_patients
from hub.errors import TooManyRequests
from hub.http.access import access
from hub.http.forms import attempt, form_data, load_form, undo_refused_change
from hub.http.request import db, territory_zone
from hub.identifiers import INS_KIND_LABELS
from hub.models import (
    CONSENT_KIND_LABELS,
    CONSENT_METHOD_LABELS,
    IDENTITY_DOCUMENT_LABELS,
    IDENTITY_STATUS_LABELS,
    IdentityCheckKind,
    Sex,
)
from hub.schemas.patient import (
    CareTeamMemberForm,
    ConsentForm,
    ConsentWithdrawalForm,
    IdentityCheckPageForm,
    PatientForm,
    PatientSearchForm,
)
from hub.services import directory, identity
from hub.web.pages import load_query, page_size, submit
from workflows import records

bp = Blueprint("patients", __name__, url_prefix="/patients")

SEX_LABELS = {Sex.FEMALE: "Féminin", Sex.MALE: "Masculin", Sex.INDETERMINATE: "Indéterminé"}
CHECK_KIND_LABELS = {
    IdentityCheckKind.DOCUMENT: "Pièce d'identité contrôlée",
    IdentityCheckKind.INS_RETRIEVAL: "INS récupéré (téléservice INSi)",
}
FORM_FIELDS = tuple(name for name in PatientForm().fields if name != "duplicates_checked")
# A consent is entered by its day; noon keeps that day whatever the offset between the zone and UTC.


@bp.context_processor
def labels():
    return {
        "SEX_LABELS": SEX_LABELS,
        "CHECK_KIND_LABELS": CHECK_KIND_LABELS,
        "IDENTITY_STATUS_LABELS": IDENTITY_STATUS_LABELS,
        "IDENTITY_DOCUMENT_LABELS": IDENTITY_DOCUMENT_LABELS,
        "CONSENT_KIND_LABELS": CONSENT_KIND_LABELS,
        "CONSENT_METHOD_LABELS": CONSENT_METHOD_LABELS,
        "IdentityCheckKind": IdentityCheckKind,
        "INS_KIND_LABELS": INS_KIND_LABELS,
    }


@bp.get("")
@access(Permission.PATIENTS_READ)
def index():
    filters, values, errors = load_query(PatientSearchForm())
    page, per_page = filters["page"], page_size()
    patients, total = identity.search_patients(
        db(),
        visible_patients(current_user),
        text=filters.get("q"),
        birth_date=filters.get("birth_date"),
        page=page,
        per_page=per_page,
    )
    audit.record(db(), actor=current_user, action="patient.search", details={"results": len(patients)})
    args = {key: values[key] for key in ("q", "birth_date") if values.get(key) and key not in errors}
    context = {"patients": patients, "total": total, "page": page, "per_page": per_page, "args": args}
    return render_template("patients/index.html", values=values, errors=errors, **context)


@bp.route("/new", methods=["GET", "POST"])
@access(Permission.PATIENTS_CREATE)
def new():
    if request.method == "GET":
        return _patient_form("patients/new.html")
    try:
        patient, values, errors = submit(PatientForm(), _create)
    except identity.PossibleDuplicate as exc:
        return _patient_form("patients/new.html", form_data(), status=exc.status, **duplicate_candidates(exc))
    except TooManyRequests as exc:
        undo_refused_change()
        return _patient_form("patients/new.html", form_data(), status=exc.status, problem=exc.detail)
    if patient is None:
        return _patient_form("patients/new.html", values, errors, status=422)
    flash(
        "Patient créé (identité provisoire). Contrôlez une pièce d'identité et récupérez l'INS pour qualifier "
        "l'identité.",
        "success",
    )
    return redirect(url_for("patients.show", patient_id=patient.id))


@bp.get("/<int:patient_id>")
@access(Permission.PATIENTS_READ)
def show(patient_id: int):
    return _record_page(patient_for(db(), current_user, patient_id))


@bp.route("/<int:patient_id>/edit", methods=["GET", "POST"])
@access(Permission.PATIENTS_WRITE)
def edit(patient_id: int):
    if request.method == "GET":
        patient = patient_for(db(), current_user, patient_id)  # the form shows the record: a read
        return _patient_form(
            "patients/edit.html", {name: getattr(patient, name) for name in FORM_FIELDS}, patient=patient
        )
    patient = patient_for(db(), current_user, patient_id, action="patient.update", write=True)
    status_before = patient.identity_status
    _, values, errors = submit(PatientForm(), lambda data: _update(patient, data), partial=True)
    if errors:
        undo_refused_change("patient.read", target=patient)
        return _patient_form("patients/edit.html", values, errors, status=422, patient=patient)
    back_to_provisional = patient.identity_status != status_before
    flash(
        "Dossier mis à jour. L'identité est repassée au statut provisoire : refaites les vérifications."
        if back_to_provisional
        else "Dossier mis à jour.",
        "warning" if back_to_provisional else "success",
    )
    return redirect(url_for("patients.show", patient_id=patient.id))


@bp.post("/<int:patient_id>/identity-checks")
@access(Permission.PATIENTS_WRITE)
def identity_check(patient_id: int):
    patient = patient_for(db(), current_user, patient_id, action="patient.identity_check", write=True)
    return _act_on_record(
        patient,
        "identity_check",
        IdentityCheckPageForm(),
        lambda data: identity.record_identity_check(db(), current_user, patient, **data),
        "Vérification d'identité enregistrée.",
        renamed={"kind": "check_kind"},
    )


@bp.post("/<int:patient_id>/consents")
@access(Permission.PATIENTS_WRITE)
def add_consent(patient_id: int):
    patient = patient_for(db(), current_user, patient_id, action="consent.add", write=True)
    return _act_on_record(
        patient,
        "consent",
        ConsentForm(),
        lambda data: identity.add_consent(db(), current_user, patient, data, zone=territory_zone()),
        "Consentement enregistré.",
    )


@bp.post("/<int:patient_id>/consents/<int:consent_id>/withdraw")
@access(Permission.PATIENTS_WRITE)
def withdraw_consent(patient_id: int, consent_id: int):
    patient = patient_for(db(), current_user, patient_id, action="consent.withdraw", write=True)
    consent = consent_for(db(), current_user, patient, consent_id)
    return _act_on_record(
        patient,
        f"withdraw-{consent.id}",
        ConsentWithdrawalForm(),
        lambda data: identity.withdraw_consent(db(), current_user, consent, reason=data["reason"]),
        "Consentement retiré.",
    )


@bp.post("/<int:patient_id>/care-team")
@access(Permission.PATIENTS_WRITE)
def add_care_team_member(patient_id: int):
    patient = patient_for(db(), current_user, patient_id, action="care_team.add", write=True)
    return _act_on_record(
        patient,
        "care_team",
        CareTeamMemberForm(),
        lambda data: identity.add_care_team_member(db(), current_user, patient, data["professional_id"]),
        "Professionnel ajouté à l'équipe de soins.",
    )


@bp.post("/<int:patient_id>/care-team/<int:professional_id>/remove")
@access(Permission.PATIENTS_WRITE)
def remove_care_team_member(patient_id: int, professional_id: int):
    patient = patient_for(db(), current_user, patient_id, action="care_team.remove", write=True)
    identity.remove_care_team_member(db(), current_user, patient, professional_id)
    flash("Professionnel retiré de l'équipe de soins.", "success")
    # Leaving the team may end one's own access to the record.
    if not can_view_patient(db(), current_user, patient):
        return redirect(url_for("patients.index"))
    return redirect(url_for("patients.show", patient_id=patient.id))


def _create(data: dict):
    checked = data.pop("duplicates_checked")
    return identity.create_patient(
        db(), current_user, data, visible=visible_patients(current_user), duplicates_checked=checked
    )


def _update(patient, data: dict):
    data.pop("duplicates_checked", None)  # a creation-only field
    return identity.update_patient(db(), current_user, patient, data)


def _patient_form(template: str, values=None, errors=None, *, status: int = 200, **context):
    gps = [(gp.id, gp.full_name) for gp in directory.general_practitioners(db(), current_user.cpts_id)]
    return render_template(template, values=values or {}, errors=errors or {}, gp_options=gps, **context), status


def duplicate_candidates(refusal: identity.PossibleDuplicate) -> dict:
    """What patients/_duplicates.html shows before a patient is created: the candidates the user may see, and
    whether there are others (for the coordination to check); the creation is undone, the check's audit
    lines kept. Shared with the referral form."""
    undo_refused_change()
    return {"candidates": refusal.candidates, "hidden_candidates": refusal.hidden}


def _record_page(patient, *, form=None, values=None, errors=None, problem=None, status: int = 200):
    record = records.patient_record(db(), patient, zone=territory_zone())
    in_team = {member.professional_id for member in record.care_team} | {patient.attending_gp_id}
    clinicians = [
        (p.id, f"{p.full_name} — {p.profession_label}")
        for p in directory.active_clinicians(db(), patient.cpts_id)
        if p.id not in in_team
    ]
    context = {"form": form, "values": values or {}, "errors": errors or {}, "problem": problem}
    return render_template(
        "patients/show.html", record=record, patient=patient, clinicians=clinicians, **context
    ), status


def _act_on_record(patient, form: str, schema, perform, success: str, *, renamed=None):
    """One action of the record page: Post/Redirect/Get when done, else the page again with the form's errors."""
    data, values, errors = load_form(schema)
    _, refused = attempt(lambda: perform(data), form_errors=errors, read="patient.read", target=patient)
    if refused:
        errors = {(renamed or {}).get(key, key): message for key, message in refused.errors.items()}
        return _record_page(
            patient, form=form, values=values, errors=errors, problem=refused.detail, status=refused.status
        )
    flash(success, "success")
    return redirect(url_for("patients.show", patient_id=patient.id))
