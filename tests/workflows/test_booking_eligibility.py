"""A remote session is booked only after the patient's HAS eligibility checklist allows it (seed 002):
no checklist, an ineligible one, or one for the other modality refuses the booking and saves nothing."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from hub.models import (
    Allocation,
    Appointment,
    AuditEvent,
    EligibilityOutcome,
    Modality,
    PlaceKind,
    Profession,
)
from tests import ZONE, factories
from tests.factories import MONDAY_14H, NOW
from workflows import appointments, eligibility


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def kine_program(db_session, territory):
    kine = factories.professional(db_session, territory.cpts, Profession.PHYSIOTHERAPIST)
    return factories.program(db_session, territory.cpts, telesoin=True, performer=kine)


def book(db_session, territory, patient, *, program=None, place=PlaceKind.DEDICATED_PLACE):
    slot = factories.slot(db_session, program or territory.program, MONDAY_14H.astimezone(dt.UTC))
    return appointments.book(db_session, territory.coordinator, slot=slot, patient=patient, place_kind=place, now=NOW)


def refused(db_session, territory, patient, match: str, **kwargs) -> eligibility.NotEligible:
    audits = count(db_session, AuditEvent, AuditEvent.action == "appointment.book")
    with pytest.raises(eligibility.NotEligible, match=match) as caught:
        book(db_session, territory, patient, **kwargs)
    db_session.commit()  # whatever the refused booking left pending would be written now (audit rows at commit)
    booked = select(Appointment.id).where(Appointment.cpts_id == territory.cpts.id)
    assert count(db_session, Appointment, Appointment.id.in_(booked)) == 0
    assert count(db_session, Allocation, Allocation.appointment_id.in_(booked)) == 0
    assert count(db_session, AuditEvent, AuditEvent.action == "appointment.book") == audits
    return caught.value


def test_no_checklist_refuses_the_booking_and_names_the_patient_and_modality(db_session, territory, newcomer):
    error = refused(db_session, territory, newcomer, "Vérifiez d'abord l'éligibilité du patient")
    assert (error.patient_id, error.modality) == (newcomer.id, Modality.ASSISTED_TELECONSULTATION)
    assert error.status == 422 and error.extra["eligibility"] == "missing"


def test_an_ineligible_patient_is_refused_with_the_recorded_alternative(db_session, territory, newcomer):
    factories.eligible_for_remote_care(
        db_session,
        newcomer,
        assessed_by=territory.coordinator,
        modalities=[Modality.ASSISTED_TELECONSULTATION],
        outcome=EligibilityOutcome.INELIGIBLE,
        alternative="home_visit",
        reasons='["Le soin nécessite un contact direct avec le patient."]',
    )
    error = refused(db_session, territory, newcomer, "déplacement à domicile a été proposé")
    assert error.extra["eligibility"] == "ineligible"


def test_the_latest_checklist_counts(db_session, territory, newcomer):
    """An older favourable checklist does not outweigh a newer unfavourable one."""
    (old,) = factories.eligible_for_remote_care(
        db_session, newcomer, assessed_by=territory.coordinator, modalities=[Modality.ASSISTED_TELECONSULTATION]
    )
    old.assessed_at = NOW - dt.timedelta(days=30)
    factories.eligible_for_remote_care(
        db_session,
        newcomer,
        assessed_by=territory.coordinator,
        modalities=[Modality.ASSISTED_TELECONSULTATION],
        outcome=EligibilityOutcome.INELIGIBLE,
        alternative="in_person",
    )
    refused(db_session, territory, newcomer, "soin en présentiel a été proposé")


def test_a_telesoin_checklist_does_not_open_an_assisted_teleconsultation(db_session, territory, newcomer):
    factories.eligible_for_remote_care(
        db_session, newcomer, assessed_by=territory.coordinator, modalities=[Modality.TELESOIN]
    )
    refused(db_session, territory, newcomer, "Vérifiez d'abord")  # eligible to télésoin, not steered to assisted


def test_an_assisted_checklist_does_not_open_telesoin(db_session, territory, newcomer, kine_program):
    factories.eligible_for_remote_care(
        db_session, newcomer, assessed_by=territory.coordinator, modalities=[Modality.ASSISTED_TELECONSULTATION]
    )
    refused(db_session, territory, newcomer, "Vérifiez d'abord", program=kine_program)


def test_a_patient_steered_to_assisted_is_refused_telesoin_and_booked_assisted(
    db_session, territory, newcomer, kine_program
):
    factories.eligible_for_remote_care(
        db_session,
        newcomer,
        assessed_by=territory.coordinator,
        modalities=[Modality.TELESOIN],
        outcome=EligibilityOutcome.ASSISTED,
        alternative="assisted",
    )
    refused(db_session, territory, newcomer, "orienté vers une téléconsultation assistée", program=kine_program)
    appointment = book(db_session, territory, newcomer)
    assert appointment.accompanying_id == territory.idel.id


def test_a_recorded_checklist_lets_the_booking_through(db_session, territory, newcomer):
    actor = territory.coordinator
    answers = dict(factories.ELIGIBLE_ANSWERS, modality=Modality.ASSISTED_TELECONSULTATION, several_conditions=True)
    assessment = eligibility.assess(db_session, actor, newcomer, answers, on=NOW.date(), zone=ZONE)
    assert assessment.outcome is EligibilityOutcome.ASSISTED  # 65 or more with several conditions (seed 003)
    assert book(db_session, territory, newcomer).patient_id == newcomer.id
