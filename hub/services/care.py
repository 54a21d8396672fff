"""The care relation: which professionals take part in a patient's care.

This is the one place that answers "may this professional see this patient?" beyond their role.
Each source is a function of a professional id returning a SELECT of `patient_id`; later features
(referrals, appointments, pathways, téléexpertise) add theirs with `register_care_relation`.
"""

from collections.abc import Callable

from sqlalchemy import Select, exists, select, union_all
from sqlalchemy.orm import Session

from hub.models import CareTeamMember, Patient, Professional

CareRelationSource = Callable[[int], Select]
CARE_RELATION_SOURCES: list[CareRelationSource] = []


def register_care_relation(source: CareRelationSource) -> CareRelationSource:
    if source not in CARE_RELATION_SOURCES:
        CARE_RELATION_SOURCES.append(source)
    return source


@register_care_relation
def attending_gp(professional_id: int) -> Select:
    return select(Patient.id.label("patient_id")).where(Patient.attending_gp_id == professional_id)


@register_care_relation
def care_team(professional_id: int) -> Select:
    return select(CareTeamMember.patient_id.label("patient_id")).where(
        CareTeamMember.professional_id == professional_id
    )


def patient_ids_in_care_of(professional_id: int):
    """A subquery of the ids of every patient the professional takes part in the care of."""
    return union_all(*(source(professional_id) for source in CARE_RELATION_SOURCES)).subquery()


def has_care_relation(session: Session, professional_id: int, patient: Patient) -> bool:
    # The médecin traitant is on the loaded row: no query for the commonest relation.
    if patient.attending_gp_id == professional_id:
        return True
    related = patient_ids_in_care_of(professional_id)
    return bool(session.scalar(select(exists().where(related.c.patient_id == patient.id))))


def care_team_member(session: Session, patient: Patient, profession, *conditions) -> Professional | None:
    """The patient's own professional of that profession (the longest in the care team), e.g. their IDEL."""
    return session.scalar(
        select(Professional)
        .join(CareTeamMember, CareTeamMember.professional_id == Professional.id)
        .where(
            CareTeamMember.patient_id == patient.id,
            Professional.profession == profession,
            Professional.is_active.is_(True),
            *conditions,
        )
        .order_by(CareTeamMember.added_at)
        .limit(1)
    )
