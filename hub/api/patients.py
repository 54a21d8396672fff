from flask import request
from flask_login import current_user
from marshmallow import Schema

from hub import audit
from hub.api import blueprint, created, load_json, page_of, pagination
from hub.auth.guards import consent_for, patient_for, patient_record_for
from hub.auth.permissions import Permission
from hub.auth.policies import RECORD_WITH_CALLER, visible_patients
from hub.errors import ValidationFailed
from hub.http.access import Preload, access, light_read, preloaded
from hub.http.request import db, territory_zone
from hub.schemas.base import Date, load
from hub.schemas.patient import (
    ConsentIn,
    ConsentOut,
    ConsentWithdrawalIn,
    ConsentWithdrawalOut,
    IdentityCheckIn,
    PatientIn,
    PatientOut,
    PatientSummaryOut,
    patient_record_out,
)
from hub.services import identity
from workflows import appointments


class _SearchArgs(Schema):
    birth_date = Date()


@blueprint.get("/patients")
@access(Permission.PATIENTS_READ)
def list_patients():
    page, per_page = pagination()
    birth_date = load(_SearchArgs(), {k: v for k, v in request.args.items() if k == "birth_date"}).get("birth_date")
    patients, total = identity.search_patients(
        db(),
        visible_patients(current_user),
        text=request.args.get("q"),
        birth_date=birth_date,
        page=page,
        per_page=per_page,
    )
    audit.record(db(), actor=current_user, action="patient.search", details={"results": len(patients)})
    return page_of(PatientSummaryOut(), patients, total, page, per_page)


@blueprint.post("/patients")
@access(Permission.PATIENTS_CREATE)
def create_patient():
    data = load_json(PatientIn())
    acknowledged = request.args.get("duplicates_checked", "false").lower() == "true"
    patient = identity.create_patient(
        db(), current_user, data, visible=visible_patients(current_user), duplicates_checked=acknowledged
    )
    return created(PatientOut().dump(patient), "api.get_patient", patient_id=patient.id)


@blueprint.get("/patients/<int:patient_id>")
@access(Permission.PATIENTS_READ)
@light_read(preload=Preload(RECORD_WITH_CALLER, lambda arguments: {"patient_id": arguments["patient_id"]}))
def get_patient(patient_id: int):
    # The Caller itself: the policy and the audit read several of its fields, each a lookup through the proxy.
    user = current_user._get_current_object()
    return patient_record_out(patient_record_for(db(), user, patient_id, preloaded=preloaded()))


@blueprint.patch("/patients/<int:patient_id>")
@access(Permission.PATIENTS_WRITE)
def update_patient(patient_id: int):
    patient = patient_for(db(), current_user, patient_id, action="patient.update", write=True)
    changes = load_json(PatientIn(), partial=True)
    if not changes:
        raise ValidationFailed({"_schema": "Aucun champ à modifier."})
    return PatientOut().dump(identity.update_patient(db(), current_user, patient, changes))


@blueprint.post("/patients/<int:patient_id>/identity-checks")
@access(Permission.PATIENTS_WRITE)
def add_identity_check(patient_id: int):
    patient = patient_for(db(), current_user, patient_id, action="patient.identity_check", write=True)
    data = load_json(IdentityCheckIn())
    identity.record_identity_check(db(), current_user, patient, **data)
    return PatientOut().dump(patient), 201


@blueprint.post("/patients/<int:patient_id>/consents")
@access(Permission.PATIENTS_WRITE)
def add_consent(patient_id: int):
    patient = patient_for(db(), current_user, patient_id, action="consent.add", write=True)
    consent = identity.add_consent(db(), current_user, patient, load_json(ConsentIn()), zone=territory_zone())
    return ConsentOut().dump(consent), 201


@blueprint.post("/patients/<int:patient_id>/consents/<int:consent_id>/withdraw")
@access(Permission.PATIENTS_WRITE)
def withdraw_consent(patient_id: int, consent_id: int):
    patient = patient_for(db(), current_user, patient_id, action="consent.withdraw", write=True)
    consent = consent_for(db(), current_user, patient, consent_id)
    reason = load_json(ConsentWithdrawalIn())["reason"]
    withdrawn = identity.withdraw_consent(db(), current_user, consent, reason=reason)
    to_review = appointments.remote_sessions_to_review(db(), patient)
    return ConsentWithdrawalOut().dump(withdrawn) | {"remote_appointments_to_review": [a.id for a in to_review]}
