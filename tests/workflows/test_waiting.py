"""The waiting list: entries, the freed-slot task written with the cancellation, matching a slot, the one-action
offer, and the waiting-time indicator."""

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hub.errors import Conflict, RuleViolation, ValidationFailed
from hub.models import (
    Appointment,
    AppointmentState,
    AuditEvent,
    FreedSlotOutcome,
    FreedSlotReason,
    FreedSlotTask,
    PlaceKind,
    ReferralState,
    Slot,
    SlotState,
    Urgency,
    WaitingEntry,
    WaitingState,
    WaitingUrgency,
)
from tests import factories
from tests.factories import MONDAY_14H, NOW
from workflows import appointments, freed_slots, indicators, programs, referrals, waiting
from workflows.indicators import Period, Scope

pytestmark = pytest.mark.usefixtures("clock")
MONDAY = 0
UPLOADS = Path("/nonexistent-uploads")  # no referral is scheduled in these tests but the one that says so


def patient(db_session, t, **fields):
    return factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator, **fields)


def wait(db_session, t, who, urgency=WaitingUrgency.WHEN_POSSIBLE, **constraints):
    return waiting.add(db_session, t.coordinator, patient=who, program=t.program, urgency=urgency, **constraints)


def booked_slot(db_session, t, start=MONDAY_14H, who=None):
    slot = factories.slot(db_session, t.program, start.astimezone(dt.UTC))
    appointment = appointments.book(
        db_session, t.coordinator, slot=slot, patient=who or t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
    )
    return slot, appointment


def open_tasks(db_session):
    return db_session.scalars(select(FreedSlotTask).where(FreedSlotTask.resolved_at.is_(None))).all()


# --- entries ------------------------------------------------------------------------------------------------


def test_a_patient_waits_once_per_program_also_for_the_database(db_session, territory):
    t = territory
    entry = wait(db_session, t, t.patient, weekdays=[MONDAY, 3], needs=["mobilite_reduite"], note="Appeler la fille")
    assert (entry.state, waiting.weekdays_of(entry), waiting.needs_of(entry)) == (
        WaitingState.WAITING,
        [0, 3],
        ["mobilite_reduite"],
    )
    with pytest.raises(Conflict, match="déjà en liste d'attente"):
        wait(db_session, t, t.patient)
    twin = WaitingEntry(
        cpts_id=t.cpts.id,
        patient_id=t.patient.id,
        program_id=t.program.id,
        urgency=WaitingUrgency.URGENT,
        created_by_user_id=t.coordinator.id,
    )
    with pytest.raises(IntegrityError), db_session.begin_nested():
        db_session.add(twin)  # the partial unique index refuses a second waiting entry
    waiting.withdraw(db_session, t.coordinator, entry, reason="Pris en charge ailleurs")
    assert (entry.state, entry.withdraw_reason) == (WaitingState.WITHDRAWN, "Pris en charge ailleurs")
    again = wait(db_session, t, t.patient)  # a withdrawn entry does not count
    assert again.id != entry.id


@pytest.mark.parametrize(
    ("constraints", "field"),
    [
        ({"weekdays": [7]}, "weekdays"),
        ({"needs": ["teleportation"]}, "needs"),
        ({"place_kind": PlaceKind.PHARMACY}, "place_kind"),  # not an officine's program
    ],
)
def test_constraints_outside_the_vocabulary_are_refused(db_session, territory, constraints, field):
    with pytest.raises(ValidationFailed) as refused:
        wait(db_session, territory, territory.patient, **constraints)
    assert field in refused.value.errors
    assert db_session.scalar(select(func.count(WaitingEntry.id))) == 0


def test_withdrawing_needs_a_reason_and_a_waiting_entry(db_session, territory):
    entry = wait(db_session, territory, territory.patient)
    with pytest.raises(ValidationFailed):
        waiting.withdraw(db_session, territory.coordinator, entry, reason=" ")
    waiting.withdraw(db_session, territory.coordinator, entry, reason="Déménagé")
    with pytest.raises(Conflict):
        waiting.withdraw(db_session, territory.coordinator, entry, reason="Encore")


def test_an_accepted_referral_waits_with_its_urgency_and_needs(db_session, territory, gp):
    t = territory
    referral = factories.referral(
        db_session,
        t.patient,
        author=gp,
        state=ReferralState.ACCEPTED,
        target_program_id=t.program.id,
        urgency=Urgency.SOON,
        needs='["audition"]',
    )
    entry = waiting.add_from_referral(db_session, t.coordinator, referral)
    assert (entry.referral_id, entry.urgency, waiting.needs_of(entry)) == (
        referral.id,
        WaitingUrgency.WITHIN_15_DAYS,
        ["audition"],
    )
    submitted = factories.referral(db_session, t.patient, author=gp, target_program_id=t.program.id)
    with pytest.raises(RuleViolation):
        waiting.add_from_referral(db_session, t.coordinator, submitted)


# --- the freed-slot task --------------------------------------------------------------------------------------


def test_a_cancellation_gives_the_coordinator_a_task_only_when_someone_waits(db_session, territory):
    t = territory
    _slot, appointment = booked_slot(db_session, t)
    appointments.cancel(db_session, t.coordinator, appointment, reason="Hospitalisé", now=NOW)
    assert open_tasks(db_session) == []  # nobody waits for the program
    wait(db_session, t, patient(db_session, t))
    other_slot, other = booked_slot(db_session, t, MONDAY_14H + dt.timedelta(days=7))
    appointments.cancel(db_session, t.coordinator, other, reason="Hospitalisé", now=NOW)
    [task] = open_tasks(db_session)
    assert (task.slot_id, task.reason, task.cancelled_appointment_id) == (
        other_slot.id,
        FreedSlotReason.CANCELLATION,
        other.id,
    )
    assert freed_slots.slot_freed(db_session, other_slot, reason=FreedSlotReason.CANCELLATION, now=NOW) is None
    assert len(open_tasks(db_session)) == 1, "one open task per slot"


def test_the_task_lives_and_dies_with_the_cancellation(db_session, territory):
    """Written in the cancellation's transaction: rolled back together, committed together."""
    t = territory
    wait(db_session, t, patient(db_session, t))
    _slot, appointment = booked_slot(db_session, t)
    db_session.commit()
    rolled_back = db_session.begin_nested()
    appointments.cancel(db_session, t.coordinator, appointment, reason="Hospitalisé", now=NOW)
    assert len(open_tasks(db_session)) == 1
    rolled_back.rollback()
    assert open_tasks(db_session) == []
    assert db_session.get(Appointment, appointment.id).state is AppointmentState.PROPOSED
    appointments.cancel(db_session, t.coordinator, appointment, reason="Hospitalisé", now=NOW)
    db_session.commit()
    assert len(open_tasks(db_session)) == 1


def test_the_database_keeps_one_open_task_per_slot(db_session, territory):
    slot = factories.slot(db_session, territory.program, MONDAY_14H.astimezone(dt.UTC))
    for _ in range(2):
        db_session.add(FreedSlotTask(cpts_id=territory.cpts.id, slot_id=slot.id, reason=FreedSlotReason.NEW_DATES))
    with pytest.raises(IntegrityError), db_session.begin_nested():
        db_session.flush()


def test_a_slot_still_held_or_past_is_not_a_task(db_session, territory):
    t = territory
    wait(db_session, t, patient(db_session, t))
    slot, _appointment = booked_slot(db_session, t)
    assert freed_slots.slot_freed(db_session, slot, reason=FreedSlotReason.CANCELLATION, now=NOW) is None
    past = factories.slot(db_session, t.program, (MONDAY_14H - dt.timedelta(days=14)).astimezone(dt.UTC))
    assert freed_slots.slot_freed(db_session, past, reason=FreedSlotReason.CANCELLATION, now=NOW) is None


def test_a_cancelled_occurrence_leaves_no_slot_to_offer(db_session, territory):
    t = territory
    wait(db_session, t, patient(db_session, t))
    slot, _appointment = booked_slot(db_session, t)
    programs.cancel_occurrence(
        db_session, t.coordinator, t.program, occurrence_start=slot.occurrence_start, reason="Congrès", now=NOW
    )
    assert db_session.get(Slot, slot.id).state is SlotState.CANCELLED  # kept: it names a cancelled appointment
    assert open_tasks(db_session) == [], "the cancellation's task closed with the occurrence"
    assert waiting.open_tasks(db_session, t.cpts.id, now=NOW) == []


def test_new_program_dates_are_tasks_when_someone_waits(db_session, territory):
    t = territory
    wait(db_session, t, patient(db_session, t))
    report = freed_slots.generate_slots(db_session, t.program, now=NOW)
    assert report.created == 12 * 3
    tasks = open_tasks(db_session)
    assert len(tasks) == report.created
    assert {task.reason for task in tasks} == {FreedSlotReason.NEW_DATES}
    assert freed_slots.generate_slots(db_session, t.program, now=NOW).created == 0
    assert len(open_tasks(db_session)) == report.created


# --- matching -------------------------------------------------------------------------------------------------


def test_matches_put_the_fitting_first_the_urgent_first_then_who_waited_longest(db_session, territory, clock):
    t = territory
    early, late, urgent, tuesday_only, busy = (patient(db_session, t) for _ in range(5))
    wait(db_session, t, early)
    clock.shift(dt.timedelta(days=1))
    wait(db_session, t, late)
    wait(db_session, t, urgent, WaitingUrgency.URGENT)
    wait(db_session, t, tuesday_only, WaitingUrgency.URGENT, weekdays=[1])
    wait(db_session, t, busy, WaitingUrgency.URGENT)
    other_program = factories.program(db_session, t.cpts)
    factories_slot = factories.slot(db_session, other_program, MONDAY_14H.astimezone(dt.UTC))
    appointments.book(
        db_session, t.coordinator, slot=factories_slot, patient=busy, place_kind=PlaceKind.DEDICATED_PLACE
    )
    slot = factories.slot(db_session, t.program, (MONDAY_14H + dt.timedelta(minutes=15)).astimezone(dt.UTC))
    matches = waiting.matches_for(db_session, slot)
    assert [(m.entry.patient_id, m.fits) for m in matches] == [
        (urgent.id, True),
        (early.id, True),
        (late.id, True),
        (tuesday_only.id, False),
        (busy.id, False),
    ]
    assert matches[0].reasons == ["Urgent, en attente depuis 0 j", "disponible tous les jours"]
    assert matches[3].problems == ["pas disponible le lundi"]
    assert matches[4].problems == ["déjà un rendez-vous à cette heure"]


def test_the_weekday_is_the_territorys(db_session, territory):
    """A Monday 00:30 in Paris is a Sunday in UTC: a Monday-only patient fits it."""
    t = territory
    wait(db_session, t, t.patient, weekdays=[MONDAY])
    start = dt.datetime(2026, 11, 23, 0, 30, tzinfo=factories.PARIS)
    assert start.astimezone(dt.UTC).weekday() == 6
    slot = factories.slot(db_session, t.program, start.astimezone(dt.UTC))
    assert [m.fits for m in waiting.matches_for(db_session, slot)] == [True]


# --- the offer ----------------------------------------------------------------------------------------------------


def freed(db_session, t):
    """Next Monday's slot, freed by a cancellation while `waiter` waits."""
    waiter = patient(db_session, t)
    entry = wait(db_session, t, waiter, WaitingUrgency.URGENT)
    _slot, appointment = booked_slot(db_session, t)
    appointments.cancel(db_session, t.coordinator, appointment, reason="Hospitalisé", now=NOW)
    [task] = open_tasks(db_session)
    return task, entry


def test_offering_books_the_waiting_patient_and_resolves_entry_and_task(db_session, territory):
    t = territory
    task, entry = freed(db_session, t)
    appointment = waiting.offer(db_session, t.coordinator, task, entry, upload_dir=UPLOADS)
    assert (appointment.patient_id, appointment.slot_id, appointment.state) == (
        entry.patient_id,
        task.slot_id,
        AppointmentState.PROPOSED,
    )
    assert (entry.state, entry.appointment_id, entry.resolved_by_user_id) == (
        WaitingState.BOOKED,
        appointment.id,
        t.coordinator.id,
    )
    assert (task.outcome, task.entry_id, task.resolved_at) == (FreedSlotOutcome.OFFERED, entry.id, NOW)
    assert waiting.open_tasks(db_session, t.cpts.id, now=NOW) == []
    db_session.commit()  # the audit lines are written at commit
    audited = db_session.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "waiting_entries")).all()
    assert "waiting.offer" in audited
    with pytest.raises(Conflict, match="plus en liste d'attente"):
        waiting.offer(db_session, t.coordinator, task, entry, upload_dir=UPLOADS)


def test_an_offer_the_slot_does_not_fit_is_refused(db_session, territory):
    t = territory
    task, entry = freed(db_session, t)
    entry.weekdays = "[4]"
    with pytest.raises(RuleViolation, match="pas disponible le lundi"):
        waiting.offer(db_session, t.coordinator, task, entry, upload_dir=UPLOADS)
    assert task.resolved_at is None


def test_the_offer_of_a_referrals_entry_schedules_the_referral(db_session, territory, gp, tmp_path):
    t = territory
    waiter = patient(db_session, t)
    referral = factories.referral(
        db_session, waiter, author=gp, state=ReferralState.ACCEPTED, target_program_id=t.program.id
    )
    entry = waiting.add_from_referral(db_session, t.coordinator, referral)
    _slot, appointment = booked_slot(db_session, t)
    appointments.cancel(db_session, t.coordinator, appointment, reason="Hospitalisé", now=NOW)
    [task] = open_tasks(db_session)
    booked = waiting.offer(db_session, t.coordinator, task, entry, upload_dir=tmp_path)
    assert (referral.state, referral.appointment_id) == (ReferralState.SCHEDULED, booked.id)


def test_a_task_of_a_cancelled_slot_is_not_listed(db_session, territory):
    t = territory
    task, _entry = freed(db_session, t)
    db_session.get(Slot, task.slot_id).state = SlotState.CANCELLED
    assert waiting.open_task_count(db_session, t.cpts.id, now=NOW) == 0


# --- the indicator ------------------------------------------------------------------------------------------------


def test_the_waiting_time_indicator(db_session, territory, clock):
    t = territory
    entries = [wait(db_session, t, patient(db_session, t)) for _ in range(4)]
    for days, entry in zip((2, 4, 9), entries[:3], strict=True):
        slot = factories.slot(db_session, t.program, (MONDAY_14H + dt.timedelta(days=7 * days)).astimezone(dt.UTC))
        task = FreedSlotTask(cpts_id=t.cpts.id, slot_id=slot.id, reason=FreedSlotReason.NEW_DATES)
        db_session.add(task)
        db_session.flush()
        waiting.offer(db_session, t.coordinator, task, entry, upload_dir=UPLOADS, now=NOW + dt.timedelta(days=days))
    found = {i.key: i for i in indicators.compute(db_session, Scope(t.cpts.id, Period(2026, 11, "Europe/Paris")))}
    assert found["liste_attente"].rows == (
        ("En attente aujourd'hui", 1),
        ("Rendez-vous pris depuis la liste dans la période", 3),
        ("Délai moyen d'attente (jours)", 5.0),
        ("Délai médian d'attente (jours)", 4.0),
    )
    other_program = factories.program(db_session, t.cpts)
    filtered = indicators.compute(db_session, Scope(t.cpts.id, Period(2026, 11, "Europe/Paris"), other_program.id))
    assert next(i for i in filtered if i.key == "liste_attente").rows[:2] == (
        ("En attente aujourd'hui", 0),
        ("Rendez-vous pris depuis la liste dans la période", 0),
    )


def test_a_waiting_patient_booked_another_way_leaves_the_list(db_session, territory):
    """Booked from the planning or their referral scheduled, the patient no longer waits for that program; another
    program's entry stays."""
    t = territory
    entry = wait(db_session, t, t.patient)
    other_program = factories.program(db_session, t.cpts)
    elsewhere = waiting.add(
        db_session, t.coordinator, patient=t.patient, program=other_program, urgency=WaitingUrgency.URGENT
    )
    _slot, appointment = booked_slot(db_session, t)
    assert (entry.state, entry.appointment_id) == (WaitingState.BOOKED, appointment.id)
    assert elsewhere.state is WaitingState.WAITING


def test_a_cancelled_referral_leaves_the_list(db_session, territory, gp):
    t = territory
    referral = factories.referral(
        db_session, t.patient, author=gp, state=ReferralState.ACCEPTED, target_program_id=t.program.id
    )
    entry = waiting.add_from_referral(db_session, t.coordinator, referral)
    referrals.cancel(db_session, gp, referral, reason="Vu aux urgences")
    assert (entry.state, entry.withdraw_reason) == (WaitingState.WITHDRAWN, "Adressage annulé")
