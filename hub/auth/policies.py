"""Object-level checks: a permission AND a relation to the object. Deny by default."""

from sqlalchemy import ColumnElement, exists, false, select
from sqlalchemy.orm import Session

from hub import audit
from hub.auth.permissions import Permission, has_permission
from hub.errors import NotFound
from hub.models import Appointment, CarePathway, Patient, Referral, Role, VisitOffer, VisitOfferState
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


# What each verb on an appointment needs from the role; the relation to the appointment comes on top.
APPOINTMENT_VERBS = {
    "read": Permission.APPOINTMENTS_READ,
    "confirm": Permission.VISITS_RESPOND,
    "decline": Permission.VISITS_RESPOND,
    "check_in": Permission.VISITS_RESPOND,
    "complete": Permission.VISITS_RESPOND,
    "degrade": Permission.VISITS_RESPOND,
    "no_show": Permission.VISITS_RESPOND,
    "cancel": Permission.APPOINTMENTS_BOOK,
    "reassign": Permission.APPOINTMENTS_BOOK,
}
_ANSWERING = frozenset({"confirm", "decline"})
_RUNNING = frozenset({"check_in", "complete", "degrade", "no_show"})


def can_act_on_appointment(session: Session, user, appointment: Appointment, verb: str) -> bool:
    """Coordinators of the CPTS: any verb. The accompanying IDEL, or an IDEL the visit is offered to:
    read, confirm, decline. The performer or the accompanying IDEL: read and run the session. Nobody else."""
    permission = APPOINTMENT_VERBS.get(verb)
    if permission is None or not has_permission(user, permission) or appointment.cpts_id != user.cpts_id:
        return False
    if _sees_whole_cpts(user):
        return True
    professional_id = user.professional_id
    if professional_id is None:
        return False
    participant = professional_id in (appointment.performer_id, appointment.accompanying_id)
    if verb in _RUNNING or (verb == "read" and participant):
        return participant
    if verb in _ANSWERING or verb == "read":
        return professional_id == appointment.accompanying_id or _is_offered_to(session, appointment, professional_id)
    return False


def _is_offered_to(session: Session, appointment: Appointment, professional_id: int) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    VisitOffer.appointment_id == appointment.id,
                    VisitOffer.professional_id == professional_id,
                    VisitOffer.state == VisitOfferState.PENDING,
                )
            )
        )
    )


def appointment_for(session: Session, user, appointment_id: int, verb: str) -> Appointment:
    """The appointment if the user may `verb` it, else 404 as if it did not exist (no IDOR oracle), the
    refusal audited. A read is audited here; the workflows audit the verbs they run."""
    appointment = session.get(Appointment, appointment_id)
    if appointment is None or not can_act_on_appointment(session, user, appointment, verb):
        raise NotFound(
            "Rendez-vous introuvable.",
            audit_action=f"appointment.{verb}",
            audit_target=("appointments", appointment_id),
        )
    if verb == "read":
        audit.record(session, actor=user, action="appointment.read", target=appointment, cpts_id=appointment.cpts_id)
    return appointment


# What each verb on a referral needs from the role; the relation to the referral comes on top.
REFERRAL_VERBS = {
    "read": Permission.REFERRALS_READ,
    "update": Permission.REFERRALS_WRITE,
    "submit": Permission.REFERRALS_WRITE,
    "attach": Permission.REFERRALS_WRITE,
    "cancel": Permission.REFERRALS_READ,  # the author (write) or the coordination (triage), checked below
    "accept": Permission.REFERRALS_TRIAGE,
    "reject": Permission.REFERRALS_TRIAGE,
    "schedule": Permission.REFERRALS_TRIAGE,
}
_AUTHOR_VERBS = frozenset({"update", "submit", "attach"})


def can_act_on_referral(user, referral: Referral, verb: str) -> bool:
    """Coordinators of the CPTS: read, triage, cancel. The author GP: read, write, cancel. The targeted
    specialist: read. Nobody else."""
    permission = REFERRAL_VERBS.get(verb)
    if permission is None or not has_permission(user, permission) or referral.cpts_id != user.cpts_id:
        return False
    if has_permission(user, Permission.REFERRALS_TRIAGE) and _sees_whole_cpts(user):
        return verb not in _AUTHOR_VERBS
    professional_id = user.professional_id
    if professional_id is None:
        return False
    author = professional_id == referral.author_id and has_permission(user, Permission.REFERRALS_WRITE)
    if verb in _AUTHOR_VERBS or verb == "cancel":
        return author
    if verb == "read":
        return author or professional_id == referral.target_specialist_id
    return False


def visible_referrals(user) -> ColumnElement[bool]:
    """The WHERE clause of the referrals a user may list: the CPTS's for the coordination, one's own
    (written or addressed to one) for a professional."""
    if not has_permission(user, Permission.REFERRALS_READ):
        return false()
    in_cpts = Referral.cpts_id == user.cpts_id
    if _sees_whole_cpts(user):
        return in_cpts
    if user.professional_id is None:
        return false()
    return in_cpts & (
        (Referral.author_id == user.professional_id) | (Referral.target_specialist_id == user.professional_id)
    )


def referral_for(session: Session, user, referral_id: int, verb: str) -> Referral:
    """The referral if the user may `verb` it, else 404 as if it did not exist, the refusal audited."""
    referral = session.get(Referral, referral_id)
    if referral is None or not can_act_on_referral(user, referral, verb):
        raise NotFound(
            "Adressage introuvable.", audit_action=f"referral.{verb}", audit_target=("referrals", referral_id)
        )
    if verb == "read":
        audit.record(session, actor=user, action="referral.read", target=referral, cpts_id=referral.cpts_id)
    return referral


def pathway_for(session: Session, user, pathway_id: int, *, action: str = "pathway.read") -> CarePathway:
    """The care pathway if the user may manage pathways and see its patient, else 404 (audited). A read is
    audited here; the workflows audit the verbs they run."""
    pathway = session.get(CarePathway, pathway_id)
    patient = session.get(Patient, pathway.patient_id) if pathway is not None else None
    if (
        patient is None
        or not has_permission(user, Permission.PATHWAYS_MANAGE)
        or not can_view_patient(session, user, patient)
    ):
        raise NotFound("Parcours introuvable.", audit_action=action, audit_target=("care_pathways", pathway_id))
    if action == "pathway.read":
        audit.record(session, actor=user, action=action, target=pathway, cpts_id=pathway.cpts_id)
    return pathway
