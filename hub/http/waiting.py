"""What the waiting-list pages and API share: the objects a new entry names, each loaded for the caller (a patient,
program or referral they may not see is a 404, audited), then one call to workflows.waiting."""

from flask_login import current_user

from hub.auth.guards import patient_for
from hub.auth.policies import referral_for
from hub.errors import ValidationFailed
from hub.http.request import db
from hub.models import WaitingEntry
from workflows import programs, waiting

CONSTRAINTS = ("urgency", "weekdays", "place_kind", "needs", "note")


def add_entry(data: dict) -> WaitingEntry:
    """From a referral (its patient and program), or a patient and a program."""
    constraints = {key: data[key] for key in CONSTRAINTS if data.get(key) is not None}
    if data.get("referral_id") is not None:
        referral = referral_for(db(), current_user, data["referral_id"], "schedule")
        return waiting.add_from_referral(db(), current_user, referral, **constraints)
    missing = {
        key: "Ce champ est obligatoire." for key in ("patient_id", "program_id", "urgency") if data.get(key) is None
    }
    if missing:
        raise ValidationFailed(missing)
    patient = patient_for(db(), current_user, data["patient_id"], action="waiting.add", write=True)
    program = programs.get_program(db(), data["program_id"], cpts_id=current_user.cpts_id)
    return waiting.add(db(), current_user, patient=patient, program=program, **constraints)
