"""The care relation: which professionals take part in a patient's care.

This is the one place that answers "may this professional see this patient?" beyond their role. Each
relation is a SELECT of `patient_id` for a professional; `patient_ids_in_care_of` is their union, written out
below so that a reader sees every way into a patient's record in this file.
"""

from sqlalchemy import ColumnElement, Select, exists, or_, select, union_all
from sqlalchemy.orm import Session

from hub.models import (
    Appointment,
    CareTeamMember,
    Patient,
    Professional,
    Referral,
    ReferralState,
    TeleexpertiseRequest,
    TeleexpertiseState,
    VisitOffer,
    VisitOfferState,
)

# A professional's id, or a bound parameter standing for it in a statement built once (see policies.visible_patient).
ProfessionalId = int | ColumnElement[int]

# The targeted specialist takes part in the care while the referral is live, from its sending to its completion.
SPECIALIST_SEES = (ReferralState.SUBMITTED, ReferralState.ACCEPTED, ReferralState.SCHEDULED, ReferralState.DONE)
# The named or assigned expert takes part in the patient's care while the request is live or answered.
EXPERT_SEES = (
    TeleexpertiseState.SUBMITTED,
    TeleexpertiseState.ASSIGNED,
    TeleexpertiseState.IN_PROGRESS,
    TeleexpertiseState.ANSWERED,
    TeleexpertiseState.CLOSED,
)


def attending_gp(professional_id: ProfessionalId) -> Select:
    return select(Patient.id.label("patient_id")).where(Patient.attending_gp_id == professional_id)


def care_team(professional_id: ProfessionalId) -> Select:
    return select(CareTeamMember.patient_id.label("patient_id")).where(
        CareTeamMember.professional_id == professional_id
    )


def referral_parties(professional_id: ProfessionalId) -> Select:
    """The author GP and the targeted specialist of a live referral; a rejected or cancelled referral opens
    nothing to the specialist."""
    return select(Referral.patient_id.label("patient_id")).where(
        or_(
            Referral.author_id == professional_id,
            (Referral.target_specialist_id == professional_id) & Referral.state.in_(SPECIALIST_SEES),
        )
    )


def appointment_participants(professional_id: ProfessionalId) -> Select:
    return select(Appointment.patient_id.label("patient_id")).where(
        (Appointment.performer_id == professional_id) | (Appointment.accompanying_id == professional_id)
    )


def visit_offer_recipients(professional_id: ProfessionalId) -> Select:
    """An IDEL a home visit is offered to, while the offer waits for their answer."""
    return (
        select(Appointment.patient_id.label("patient_id"))
        .join(VisitOffer, VisitOffer.appointment_id == Appointment.id)
        .where(VisitOffer.professional_id == professional_id, VisitOffer.state == VisitOfferState.PENDING)
    )


def teleexpertise_parties(professional_id: ProfessionalId) -> Select:
    """The requester, and the named or assigned expert while the request is live or answered; a declined
    or expired request opens nothing to the expert. Pool members see the request, not the record."""
    return select(TeleexpertiseRequest.patient_id.label("patient_id")).where(
        or_(
            TeleexpertiseRequest.requester_id == professional_id,
            (TeleexpertiseRequest.expert_id == professional_id) & TeleexpertiseRequest.state.in_(EXPERT_SEES),
        )
    )


def patient_ids_in_care_of(professional_id: ProfessionalId):
    """A subquery of the ids of every patient the professional takes part in the care of."""
    return union_all(
        attending_gp(professional_id),
        care_team(professional_id),
        referral_parties(professional_id),
        appointment_participants(professional_id),
        visit_offer_recipients(professional_id),
        teleexpertise_parties(professional_id),
    ).subquery()


def in_care_of(professional_id: ProfessionalId) -> ColumnElement[bool]:
    """Whether the professional takes part in the care of the patient of the enclosing SELECT of `Patient`: the
    patient's row and the care check in one round trip. The médecin traitant, the commonest relation, comes first
    so that the database need not run the union for them."""
    related = patient_ids_in_care_of(professional_id)
    return or_(Patient.attending_gp_id == professional_id, exists().where(related.c.patient_id == Patient.id))


def has_care_relation(session: Session, professional_id: int, patient: Patient) -> bool:
    # The médecin traitant is on the loaded row: no query for the commonest relation.
    if patient.attending_gp_id == professional_id:
        return True
    related = patient_ids_in_care_of(professional_id)
    return bool(session.scalar(select(exists().where(related.c.patient_id == patient.id))))


def care_team_member(session: Session, patient: Patient, profession, *conditions) -> Professional | None:
    """The patient's own professional of that profession (the longest in the care team), e.g. their IDEL."""
    return session.scalar(care_team_query(patient.id, profession, Professional, *conditions))


def care_team_query(patient_id, profession, column, *conditions):
    """care_team_member's query, selecting `column` (the Professional, or its id for a scalar subquery that a
    booking puts in the one query reading all its rules' facts)."""
    return (
        select(column)
        .join(CareTeamMember, CareTeamMember.professional_id == Professional.id)
        .where(
            CareTeamMember.patient_id == patient_id,
            Professional.profession == profession,
            Professional.is_active.is_(True),
            *conditions,
        )
        .order_by(CareTeamMember.added_at)
        .limit(1)
    )
