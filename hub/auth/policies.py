"""Object-level checks: a permission AND a relation to the object. Deny by default."""

from sqlalchemy import ColumnElement, false
from sqlalchemy.orm import Session

from hub.auth.permissions import Permission, has_permission
from hub.models import Patient, Role
from hub.services.care import has_care_relation, patient_ids_in_care_of


def _sees_whole_cpts(user) -> bool:
    return user.has_role(Role.COORDINATOR)


def can_view_patient(session: Session, user, patient: Patient) -> bool:
    if not has_permission(user, Permission.PATIENTS_READ) or patient.cpts_id != user.cpts_id:
        return False
    if _sees_whole_cpts(user):
        return True
    return user.professional_id is not None and has_care_relation(session, user.professional_id, patient)


def can_edit_patient(session: Session, user, patient: Patient) -> bool:
    return has_permission(user, Permission.PATIENTS_WRITE) and can_view_patient(session, user, patient)


def visible_patients(user) -> ColumnElement[bool]:
    """The WHERE clause of the patients a user may list."""
    if not has_permission(user, Permission.PATIENTS_READ):
        return false()
    in_cpts = Patient.cpts_id == user.cpts_id
    if _sees_whole_cpts(user):
        return in_cpts
    if user.professional_id is None:
        return false()
    related = patient_ids_in_care_of(user.professional_id)
    return in_cpts & Patient.id.in_(related.select())


def can_manage_in_cpts(user, permission: Permission, cpts_id: int) -> bool:
    return has_permission(user, permission) and user.cpts_id == cpts_id
