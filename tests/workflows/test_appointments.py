import datetime as dt

import pytest
from sqlalchemy import func, select

from hub.db import driver_execute
from hub.errors import Conflict, InvalidTransition, RuleViolation, ValidationFailed
from hub.models import (
    Allocation,
    AllocationResource,
    Appointment,
    AppointmentState,
    OutboxMessage,
    PlaceKind,
    Slot,
    SlotState,
    VisitOffer,
    VisitOfferState,
)
from scheduling.bookings import BookingConflict
from tests import factories
from tests.factories import FULL_CHECKLIST, MONDAY_14H, NOW, check_in
from workflows import appointments

S = AppointmentState


def book(db_session, t, start=MONDAY_14H, *, patient=None, place=PlaceKind.DEDICATED_PLACE, **kwargs):
    starts_at = start.astimezone(dt.UTC)
    slot = db_session.scalar(select(Slot).where(Slot.program_id == t.program.id, Slot.starts_at == starts_at))
    slot = slot or factories.slot(db_session, t.program, starts_at)
    return appointments.book(
        db_session, t.coordinator, slot=slot, patient=patient or t.patient, place_kind=place, now=NOW, **kwargs
    )


def holds(appointment):
    return sorted(
        (a.resource_kind.value, a.resource_id, a.starts_at.isoformat(), a.ends_at.isoformat())
        for a in appointment.allocations
    )


def test_booking_holds_each_resource_over_its_own_range(db_session, territory):
    t = territory
    appointment = book(db_session, t)
    start = MONDAY_14H.astimezone(dt.UTC)
    window = (start - dt.timedelta(minutes=20), start + dt.timedelta(minutes=40))
    assert appointment.state is S.PROPOSED
    assert appointment.accompanying_id == t.idel.id, "the patient's own IDEL is asked first"
    assert holds(appointment) == sorted(
        [
            ("patient", t.patient.id, window[0].isoformat(), window[1].isoformat()),
            ("professional", t.cardiologist.id, start.isoformat(), (start + dt.timedelta(minutes=15)).isoformat()),
            ("professional", t.idel.id, window[0].isoformat(), window[1].isoformat()),
        ]
    )
    offer = db_session.scalar(select(VisitOffer).where(VisitOffer.appointment_id == appointment.id))
    assert (offer.professional_id, offer.round, offer.state) == (t.idel.id, 1, VisitOfferState.PENDING)
    assert offer.expires_at == dt.datetime(2026, 11, 16, 10, 0, tzinfo=dt.UTC), "2 h of office time after 9:00"
    sent = db_session.scalars(select(OutboxMessage.recipient)).all()
    assert "idel@example.org" in sent


def test_a_slot_cannot_be_booked_twice(db_session, territory):
    t = territory
    slot = factories.slot(db_session, t.program, MONDAY_14H.astimezone(dt.UTC))
    appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
    )
    other_patient = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
    with pytest.raises(BookingConflict) as caught:
        appointments.book(
            db_session,
            t.coordinator,
            slot=slot,
            patient=other_patient,
            place_kind=PlaceKind.DEDICATED_PLACE,
            accompanying=t.other_idel,
            now=NOW,
        )
    assert "LEMAITRE" in caught.value.detail and caught.value.status == 409


def test_back_to_back_slots_both_succeed_but_the_idel_cannot_be_in_two_places(db_session, territory):
    t = territory
    first = book(db_session, t)
    second_patient = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
    second = book(
        db_session, t, MONDAY_14H + dt.timedelta(minutes=15), patient=second_patient, accompanying=t.other_idel
    )
    assert first.ends_at == second.starts_at
    third_patient = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
    with pytest.raises(BookingConflict) as caught:
        book(db_session, t, MONDAY_14H + dt.timedelta(minutes=30), patient=third_patient, accompanying=t.idel)
    assert caught.value.hold.resource_id == t.idel.id


def test_a_conflict_leaves_no_partial_allocation(db_session, territory):
    t = territory
    book(db_session, t)
    db_session.commit()
    before = db_session.scalar(select(func.count()).select_from(Allocation))
    other = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
    db_session.commit()
    with pytest.raises(BookingConflict):
        book(db_session, t, MONDAY_14H + dt.timedelta(minutes=15), patient=other, accompanying=t.idel)
    db_session.rollback()
    assert db_session.scalar(select(func.count()).select_from(Allocation)) == before


def test_idel_confirms_then_check_in_and_complete(db_session, territory):
    t = territory
    appointment = book(db_session, t)
    appointments.confirm(db_session, t.idel_user, appointment, now=NOW)
    assert appointment.state is S.CONFIRMED and appointment.sequence == 1
    with pytest.raises(ValidationFailed) as caught:
        appointments.check_in(
            db_session, t.idel_user, appointment, identity_method="CNI", patient_location="", callback_phone=""
        )
    assert set(caught.value.errors) == {"patient_location", "callback_phone"}
    assert appointment.state is S.CONFIRMED
    appointments.check_in(
        db_session,
        t.idel_user,
        appointment,
        identity_method="CNI présentée",
        patient_location="Domicile, 3 rue des Écoles, Vergt",
        callback_phone="0612345678",
    )
    assert appointment.state is S.CHECKED_IN and appointment.identity_checked_by_user_id == t.idel_user.id
    before = appointment.starts_at - dt.timedelta(minutes=10)
    with pytest.raises(ValidationFailed) as caught:
        appointments.save_checklist(db_session, t.idel_user, appointment, items={"camera": True}, now=before)
    assert {"sound", "light", "privacy"} <= set(caught.value.errors)
    assert appointment.checklist_saved_at is None
    with pytest.raises(RuleViolation, match="n'a pas été enregistrée"):
        appointments.complete(db_session, t.idel_user, appointment, now=appointment.starts_at)
    appointments.save_checklist(db_session, t.idel_user, appointment, items=FULL_CHECKLIST, now=before)
    assert (appointment.checklist_saved_at, appointment.checklist_saved_by_user_id) == (before, t.idel_user.id)
    with pytest.raises(RuleViolation, match="pas encore commencé"):
        appointments.complete(db_session, t.idel_user, appointment, now=appointment.starts_at - dt.timedelta(seconds=1))
    assert appointment.state is S.CHECKED_IN
    appointments.complete(db_session, t.idel_user, appointment, now=appointment.starts_at)
    assert appointment.state is S.DONE


def test_the_checklist_is_saved_before_the_session_ends_only(db_session, territory):
    t = territory
    appointment = book(db_session, t)
    with pytest.raises(InvalidTransition):  # not confirmed yet
        appointments.save_checklist(db_session, t.idel_user, appointment, items=FULL_CHECKLIST, now=NOW)
    appointments.confirm(db_session, t.idel_user, appointment, now=NOW)
    with pytest.raises(RuleViolation, match="La séance est finie"):
        appointments.save_checklist(db_session, t.idel_user, appointment, items=FULL_CHECKLIST, now=appointment.ends_at)
    assert appointment.checklist_saved_at is None and appointment.checklist == "{}"
    late_start = appointment.starts_at + dt.timedelta(minutes=5)
    appointments.save_checklist(db_session, t.idel_user, appointment, items=FULL_CHECKLIST, now=late_start)
    assert appointment.checklist_saved_at == late_start


def test_a_patient_received_whose_session_ran_over_can_still_be_done(db_session, territory, clock):
    """The IDEL received the patient but saved no checklist before the session's end: she still can, then end it
    (a session that can never be done would only be « degraded » or a « no-show », both wrong)."""
    t = territory
    appointment = factories.visit(db_session, t, state=S.CONFIRMED)
    factories.check_in(db_session, t.idel_user, appointment)
    over = appointment.ends_at + dt.timedelta(minutes=10)
    appointments.save_checklist(db_session, t.idel_user, appointment, items=FULL_CHECKLIST, now=over)
    appointments.complete(db_session, t.idel_user, appointment, now=over)
    assert (appointment.state, appointment.checklist_saved_at) == (S.DONE, over)


def test_confirmation_needs_a_valid_consent(db_session, territory):
    t = territory
    for consent in t.patient.consents:
        consent.withdrawn_at = NOW
    appointment = book(db_session, t)
    with pytest.raises(RuleViolation, match="consentement"):
        appointments.confirm(db_session, t.idel_user, appointment, now=NOW)
    assert appointment.state is S.PROPOSED


def test_minor_needs_an_adult_present(db_session, territory):
    t = territory
    child = factories.consenting_patient(
        db_session, t.cpts, recorded_by=t.coordinator, birth_date=dt.date(2018, 5, 1), legal_representative_name="Mme X"
    )
    appointment = book(db_session, t, patient=child, accompanying=t.idel)
    appointments.confirm(db_session, t.idel_user, appointment, now=NOW)
    appointments.check_in(
        db_session,
        t.idel_user,
        appointment,
        identity_method="livret de famille",
        patient_location="Cabinet",
        callback_phone="0612345678",
    )
    checklist = {"camera": True, "sound": True, "light": True, "privacy": True}
    before = appointment.starts_at - dt.timedelta(minutes=10)
    with pytest.raises(ValidationFailed) as caught:
        appointments.save_checklist(db_session, t.idel_user, appointment, items=checklist, now=before)
    assert "adulte" in caught.value.errors["adult_present"]
    items = checklist | {"adult_present": True}
    appointments.save_checklist(db_session, t.idel_user, appointment, items=items, now=before)
    appointments.complete(db_session, t.idel_user, appointment, now=appointment.ends_at)


def test_decline_returns_to_the_coordinator_and_frees_the_idel(db_session, territory):
    t = territory
    appointment = book(db_session, t)
    with pytest.raises(ValidationFailed):
        appointments.decline(db_session, t.idel_user, appointment, reason=" ")
    appointments.decline(db_session, t.idel_user, appointment, reason="Tournée complète ce lundi", now=NOW)
    assert appointment.state is S.DECLINED
    assert appointment.declined_reason == "Tournée complète ce lundi"
    assert appointment.accompanying_id is None
    assert t.idel.id not in {
        a.resource_id for a in appointment.allocations if a.resource_kind is AllocationResource.PROFESSIONAL
    }
    assert "coord@example.org" in db_session.scalars(select(OutboxMessage.recipient)).all()
    appointments.reassign(db_session, t.coordinator, appointment, idel=t.other_idel, now=NOW)
    assert (appointment.state, appointment.accompanying_id) == (S.PROPOSED, t.other_idel.id)


def test_unanswered_visit_goes_to_other_idels_and_the_first_to_accept_gets_it(db_session, territory):
    t = territory
    third = factories.professional(
        db_session, t.cpts, factories.Profession.NURSE, commune_insee="24037", accompanies_teleconsultation=True
    )
    appointment = book(db_session, t)
    offers = appointments.offer_to_other_idels(db_session, appointment, now=NOW + dt.timedelta(hours=3))
    assert [o.professional_id for o in offers] == [t.other_idel.id, third.id], "same commune first"
    assert appointment.accompanying_id is None
    appointments.confirm(db_session, t.other_idel_user, appointment, now=NOW + dt.timedelta(hours=4))
    assert (appointment.state, appointment.accompanying_id) == (S.CONFIRMED, t.other_idel.id)
    states = {o.professional_id: o.state for o in db_session.scalars(select(VisitOffer))}
    assert states[t.other_idel.id] is VisitOfferState.ACCEPTED
    assert states[t.idel.id] is VisitOfferState.WITHDRAWN and states[third.id] is VisitOfferState.WITHDRAWN
    with pytest.raises(InvalidTransition):
        appointments.confirm(db_session, t.idel_user, appointment, now=NOW + dt.timedelta(hours=5))


def test_busy_idels_are_not_offered_the_visit(db_session, territory):
    t = territory
    other_patient = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
    book(db_session, t, MONDAY_14H + dt.timedelta(minutes=15), patient=other_patient, accompanying=t.other_idel)
    appointment = book(db_session, t)
    assert appointments.offer_to_other_idels(db_session, appointment, now=NOW) == []


def test_home_visit_needs_an_idel_serving_the_commune(db_session, territory):
    t = territory
    far = factories.professional(db_session, t.cpts, factories.Profession.NURSE, commune_insee="24322")
    with pytest.raises(RuleViolation, match="n'intervient pas"):
        book(db_session, t, place=PlaceKind.HOME, accompanying=far)
    far.served_communes = "24571 24037"
    assert book(db_session, t, place=PlaceKind.HOME, accompanying=far).accompanying_id == far.id


@pytest.mark.parametrize(("hours_before", "late"), [(48, False), (25, False), (23, True), (1, True)])
def test_cancel_releases_everything_and_flags_late_cancellations(db_session, territory, hours_before, late):
    t = territory
    appointment = book(db_session, t)
    appointments.cancel(
        db_session,
        t.coordinator,
        appointment,
        reason="Hospitalisation",
        now=MONDAY_14H - dt.timedelta(hours=hours_before),
    )
    db_session.flush()
    assert appointment.state is S.CANCELLED and appointment.is_late_cancellation is late
    assert (
        db_session.scalar(
            select(func.count()).select_from(Allocation).where(Allocation.appointment_id == appointment.id)
        )
        == 0
    )
    recipients = db_session.scalars(
        select(OutboxMessage.recipient).where(OutboxMessage.kind == "appointment_cancelled")
    ).all()
    assert sorted(recipients) == ["0612345678", "cardio@example.org", "idel@example.org"]


def test_slot_is_free_again_after_a_cancellation(db_session, territory):
    t = territory
    slot = factories.slot(db_session, t.program, MONDAY_14H.astimezone(dt.UTC))
    first = appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
    )
    appointments.cancel(db_session, t.coordinator, first, reason="Erreur", now=NOW)
    db_session.flush()
    again = appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
    )
    assert again.state is S.PROPOSED


def test_no_show_is_recorded_by_a_person_after_the_start_only(db_session, territory):
    t = territory
    appointment = book(db_session, t)
    appointments.confirm(db_session, t.idel_user, appointment, now=NOW)
    with pytest.raises(RuleViolation):
        appointments.record_no_show(db_session, t.coordinator, appointment, now=MONDAY_14H - dt.timedelta(minutes=5))
    appointments.record_no_show(db_session, t.coordinator, appointment, now=MONDAY_14H + dt.timedelta(minutes=20))
    assert appointment.state is S.NO_SHOW and appointment.no_show_recorded_by_user_id == t.coordinator.id


TRANSITIONS = [
    ("confirm", {S.PROPOSED}),
    ("decline", {S.PROPOSED}),
    ("check_in", {S.CONFIRMED}),
    ("complete", {S.CHECKED_IN}),
    ("degrade", {S.CHECKED_IN}),
    ("cancel", {S.PROPOSED, S.CONFIRMED, S.DECLINED}),
    ("no_show", {S.CONFIRMED}),
]


@pytest.mark.parametrize(("verb", "allowed"), TRANSITIONS)
@pytest.mark.parametrize("state", list(S))
def test_transition_table(verb, allowed, state):
    if state in allowed:
        assert appointments.MACHINE.target(verb, state) is not None
    else:
        with pytest.raises(InvalidTransition, match="Action impossible"):
            appointments.MACHINE.target(verb, state)


def test_degraded_keeps_the_reason(db_session, territory):
    t = territory
    appointment = book(db_session, t)
    appointments.confirm(db_session, t.idel_user, appointment, now=NOW)
    check_in(db_session, t.idel_user, appointment)
    appointments.degrade(db_session, t.idel_user, appointment, reason="Vidéo coupée, poursuite au téléphone")
    assert appointment.state is S.DEGRADED


def test_care_relation_follows_the_appointment(db_session, territory):
    from hub.services.care import has_care_relation

    t = territory
    assert not has_care_relation(db_session, t.cardiologist.id, t.patient)
    book(db_session, t)
    assert has_care_relation(db_session, t.cardiologist.id, t.patient)


def test_office_minutes_skip_nights_and_weekends():
    friday_evening = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.UTC)  # 19:00 Paris
    assert appointments.add_office_minutes(friday_evening, 120, "Europe/Paris") == dt.datetime(
        2026, 11, 23, 9, 0, tzinfo=dt.UTC
    )


def test_a_cancelled_slot_cannot_be_booked(db_session, territory):
    t = territory
    slot = factories.slot(db_session, t.program, (MONDAY_14H + dt.timedelta(days=7)).astimezone(dt.UTC))
    slot.state = SlotState.CANCELLED
    with pytest.raises(Conflict, match="plus ouvert"):
        appointments.book(
            db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
        )


def test_an_idel_declining_an_open_visit_is_audited_and_others_may_still_accept(db_session, territory):
    from hub.models import AuditEvent

    t = territory
    appointment = book(db_session, t)
    appointments.offer_to_other_idels(db_session, appointment, now=NOW + dt.timedelta(hours=3))
    appointments.decline(db_session, t.other_idel_user, appointment, reason="Pas disponible", now=NOW)
    db_session.commit()
    assert appointment.state is S.PROPOSED
    assert db_session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == (
        "appointment.decline_offer"
    )
    with pytest.raises(RuleViolation, match="plusieurs IDEL"):
        appointments.decline(db_session, t.coordinator, appointment, reason="?", now=NOW)
    with pytest.raises(RuleViolation, match="plusieurs IDEL"):
        appointments.confirm(db_session, t.coordinator, appointment, now=NOW)


def test_every_change_raises_the_calendar_sequence(db_session, territory):
    t = territory
    appointment = book(db_session, t)
    appointments.confirm(db_session, t.idel_user, appointment, now=NOW)
    before = appointment.sequence
    check_in(db_session, t.idel_user, appointment)
    assert appointment.sequence == before + 1


def test_an_officine_is_no_place_for_another_programs_session_even_with_nobody_accompanying(db_session, territory):
    t = territory
    with pytest.raises(ValidationFailed) as refused:
        book(db_session, t, place=PlaceKind.PHARMACY)
    assert refused.value.errors == {"place_kind": appointments.OFFICINE_ONLY_ITS_PROGRAM}
    assert db_session.scalar(select(func.count(Appointment.id))) == 0


def test_an_offer_added_in_the_unit_of_work_is_answered_with_the_others(db_session, territory):
    """The confirmation answers the pending offers by one UPDATE run by the driver (with the appointment's), which
    does not autoflush: an offer still pending in memory is flushed first, so it is withdrawn with the others, not
    inserted pending after the answer. (confirm's own reads autoflush before it today: the answer is built and run
    alone, as the last step of a unit of work.)"""
    t = territory
    appointment = book(db_session, t)
    db_session.flush()
    db_session.add(VisitOffer(appointment_id=appointment.id, professional_id=t.other_idel.id, round=2))
    answer, parameters = appointments._answer_offers(db_session, appointment, t.idel.id, NOW)
    driver_execute(db_session.connection(), answer, [parameters])
    db_session.commit()
    states = dict(
        db_session.execute(
            select(VisitOffer.professional_id, VisitOffer.state).where(VisitOffer.appointment_id == appointment.id)
        ).all()
    )
    assert states == {t.idel.id: VisitOfferState.ACCEPTED, t.other_idel.id: VisitOfferState.WITHDRAWN}
