"""Attendance per participant (issue 16, item 3): each absence is its own outcome, with its own fees, rescheduling
and indicator; recorded by a person after the start; a late cancellation is none of them."""

import datetime as dt
import inspect
import json
import threading

import grimp
import pytest
from sqlalchemy import select

from hub.errors import InvalidTransition, RuleViolation, ValidationFailed
from hub.models import (
    Appointment,
    AppointmentState,
    Attendance,
    FeeEntry,
    FeeStatus,
    OutboxMessage,
    Profession,
    ReferralState,
    User,
)
from tests import factories
from tests.factories import MONDAY_14H, NOW
from workflows import appointments, attendance, completion, indicators, jobs
from workflows.indicators import Period, Scope

S = AppointmentState
pytestmark = pytest.mark.usefixtures("clock")
HEALTH_WORDS = ("cardio", "téléconsultation cardiologie", "insuffisance", "spécialiste", "Lemaitre")


def _during(appointment) -> dt.datetime:
    return appointment.starts_at + dt.timedelta(minutes=5)


def _fees(db_session, appointment) -> dict[str, FeeStatus]:
    rows = db_session.scalars(select(FeeEntry).where(FeeEntry.appointment_id == appointment.id))
    return {row.code: row.status for row in rows}


def _held_session(db_session, t):
    """A session under way: confirmed by the IDEL, its checklist saved before, the patient checked in."""
    return factories.visit(db_session, t, state=S.CHECKED_IN)


def _outcomes(db_session, t) -> dict:
    indicator = indicators.attendance_outcomes(db_session, Scope(t.cpts.id, Period(2026, 11, "Europe/Paris")))
    return {row[0]: row[1] for row in indicator.rows}


def test_attendance_is_recorded_after_the_start_only(db_session, territory):
    t = territory
    appointment = factories.visit(db_session, t, state=S.CONFIRMED)
    with pytest.raises(RuleViolation, match="après l'heure de début"):
        attendance.record(
            db_session,
            t.idel_user,
            appointment,
            patient=False,
            accompanying=True,
            performer=True,
            now=appointment.starts_at - dt.timedelta(minutes=1),
        )
    assert attendance.attendance_of(db_session, appointment) is None
    assert appointment.state is S.CONFIRMED


def test_patient_absent_is_the_no_show_with_no_fee(db_session, territory):
    t = territory
    appointment = factories.visit(db_session, t, state=S.CONFIRMED)
    row = attendance.record(
        db_session,
        t.idel_user,
        appointment,
        patient=False,
        accompanying=True,
        performer=True,
        note="Pas de réponse au domicile",
        now=_during(appointment),
    )
    assert appointment.state is S.NO_SHOW and appointment.no_show_recorded_by_user_id == t.idel_user.id
    assert (row.recorded_by_user_id, row.note) == (t.idel_user.id, "Pas de réponse au domicile")
    with pytest.raises(InvalidTransition):
        completion.complete(db_session, t.idel_user, appointment, now=appointment.ends_at)
    assert _fees(db_session, appointment) == {}
    outcomes = _outcomes(db_session, t)
    assert (outcomes["Patient absent"], outcomes["Taux d'absence du patient (%)"]) == (1, 100.0)
    assert outcomes["Annulations tardives"] == 0


def test_idel_absent_the_session_goes_on_the_act_is_paid_not_the_accompaniment(db_session, territory):
    t = territory
    appointment = _held_session(db_session, t)
    attendance.record(
        db_session,
        t.coordinator,
        appointment,
        patient=True,
        accompanying=False,
        performer=True,
        now=_during(appointment),
    )
    assert appointment.state is S.CHECKED_IN, "the session may still take place"
    assert [item.appointment for item in attendance.to_reschedule(db_session, t.cpts.id, now=NOW)] == [appointment]
    completion.complete(db_session, t.coordinator, appointment, now=appointment.ends_at)
    assert _fees(db_session, appointment) == {"TC": FeeStatus.ACCRUED}, "no TLL for the absent IDEL"
    assert attendance.to_reschedule(db_session, t.cpts.id, now=NOW) == [], "held: nothing to book again"
    assert _outcomes(db_session, t)["Accompagnant·e absent·e"] == 1


def test_idel_recorded_absent_after_completion_loses_the_accrued_accompaniment_fee(db_session, territory):
    t = territory
    appointment = factories.visit(db_session, t, state=S.DONE)
    assert _fees(db_session, appointment) == {"TC": FeeStatus.ACCRUED, "TLL": FeeStatus.ACCRUED}
    attendance.record(
        db_session,
        t.coordinator,
        appointment,
        patient=True,
        accompanying=False,
        performer=True,
        now=appointment.ends_at + dt.timedelta(hours=1),
    )
    assert _fees(db_session, appointment) == {"TC": FeeStatus.ACCRUED, "TLL": FeeStatus.CANCELLED}


def test_idel_absent_after_her_fee_was_declared_is_refused(db_session, territory):
    t = territory
    appointment = factories.visit(db_session, t, state=S.DONE)
    entry = db_session.scalar(select(FeeEntry).where(FeeEntry.appointment_id == appointment.id, FeeEntry.code == "TLL"))
    entry.status = FeeStatus.DECLARED
    with pytest.raises(RuleViolation, match="déjà déclarée"):
        attendance.record(
            db_session,
            t.coordinator,
            appointment,
            patient=True,
            accompanying=False,
            performer=True,
            now=appointment.ends_at,
        )


def test_performer_absent_postpones_tells_everyone_and_waits_to_be_booked_again(db_session, territory, clock):
    t = territory
    appointment = _held_session(db_session, t)
    attendance.record(
        db_session, t.idel_user, appointment, patient=True, accompanying=True, performer=False, now=_during(appointment)
    )
    assert appointment.state is S.POSTPONED
    with pytest.raises(InvalidTransition):
        completion.complete(db_session, t.idel_user, appointment, now=appointment.ends_at)
    assert _fees(db_session, appointment) == {}
    told = db_session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "appointment_postponed")).all()
    assert sorted(message.recipient for message in told) == ["0612345678", "idel@example.org"]
    for message in told:
        text = json.dumps(json.loads(message.payload), ensure_ascii=False).lower()
        assert not any(word.lower() in text for word in HEALTH_WORDS)
    next_monday = factories.slot(db_session, t.program, (MONDAY_14H + dt.timedelta(days=7)).astimezone(dt.UTC))
    [item] = attendance.to_reschedule(db_session, t.cpts.id, now=NOW)
    assert (item.appointment, item.why, item.next_slot) == (appointment, attendance.PERFORMER_ABSENT, next_monday)
    assert attendance.count_to_reschedule(db_session, t.cpts.id) == 1
    clock.move_to(_during(appointment) + dt.timedelta(minutes=30))  # booked again after the absence was noted
    appointments.book(
        db_session, t.coordinator, slot=next_monday, patient=t.patient, place_kind=appointment.place_kind, now=NOW
    )
    assert attendance.to_reschedule(db_session, t.cpts.id, now=NOW) == []
    outcomes = _outcomes(db_session, t)
    assert (outcomes["Professionnel absent (séance reportée)"], outcomes["Patient absent"]) == (1, 0)


def test_a_referrals_postponed_session_sends_the_referral_back_to_schedule(db_session, territory):
    t = territory
    appointment = factories.visit(db_session, t, state=S.CONFIRMED)
    gp = factories.clinician(db_session, t.cpts, Profession.GENERAL_PRACTITIONER)
    referral = factories.referral(
        db_session,
        t.patient,
        author=gp,
        state=ReferralState.SCHEDULED,
        appointment_id=appointment.id,
        target_program_id=t.program.id,
    )
    attendance.record(
        db_session,
        t.coordinator,
        appointment,
        patient=True,
        accompanying=True,
        performer=False,
        now=_during(appointment),
    )
    assert (referral.state, referral.appointment_id) == (ReferralState.ACCEPTED, None)
    [item] = attendance.to_reschedule(db_session, t.cpts.id, now=NOW)
    assert item.referral_id == referral.id, "booked again from the referral's page"


def test_a_postponed_session_is_final(db_session, territory):
    t = territory
    appointment = factories.visit(db_session, t, state=S.CONFIRMED)
    answers = {"patient": True, "accompanying": True, "performer": False}
    attendance.record(db_session, t.coordinator, appointment, **answers, now=_during(appointment))
    with pytest.raises(InvalidTransition):
        attendance.record(db_session, t.coordinator, appointment, **answers | {"performer": True}, now=NOW)


@pytest.mark.parametrize(
    ("state", "answers", "field"),
    [
        (S.CHECKED_IN, {"patient": False, "accompanying": True, "performer": True}, "patient"),
        (S.DONE, {"patient": True, "accompanying": True, "performer": False}, "performer"),
        (S.CONFIRMED, {"patient": True, "accompanying": None, "performer": True}, "accompanying"),
    ],
)
def test_answers_that_contradict_the_session_are_refused(db_session, territory, state, answers, field):
    t = territory
    appointment = factories.visit(db_session, t, state=state)
    with pytest.raises(ValidationFailed) as refused:
        attendance.record(db_session, t.coordinator, appointment, **answers, now=appointment.ends_at)
    assert set(refused.value.errors) == {field}
    assert appointment.state is state and attendance.attendance_of(db_session, appointment) is None


def test_a_telesoin_session_has_nobody_accompanying(db_session, territory, kine_session):
    with pytest.raises(ValidationFailed) as refused:
        attendance.record(
            db_session,
            territory.coordinator,
            kine_session,
            patient=True,
            accompanying=True,
            performer=True,
            now=_during(kine_session),
        )
    assert set(refused.value.errors) == {"accompanying"}


def test_recording_again_replaces_the_answers(db_session, territory):
    t = territory
    appointment = _held_session(db_session, t)
    for accompanying in (False, True):
        attendance.record(
            db_session,
            t.coordinator,
            appointment,
            patient=True,
            accompanying=accompanying,
            performer=True,
            now=_during(appointment),
        )
    rows = db_session.scalars(select(Attendance).where(Attendance.appointment_id == appointment.id)).all()
    assert [row.is_accompanying_present for row in rows] == [True]


def test_a_late_cancellation_is_not_a_no_show(db_session, territory):
    t = territory
    late = factories.visit(db_session, t, state=S.CONFIRMED)
    appointments.cancel(
        db_session, t.coordinator, late, reason="Empêchement", now=late.starts_at - dt.timedelta(hours=2)
    )
    missed = factories.visit(db_session, t, MONDAY_14H + dt.timedelta(minutes=15), state=S.CONFIRMED)
    attendance.record(
        db_session, t.idel_user, missed, patient=False, accompanying=True, performer=True, now=_during(missed)
    )
    assert (late.state, late.is_late_cancellation, missed.state) == (S.CANCELLED, True, S.NO_SHOW)
    outcomes = _outcomes(db_session, t)
    assert (outcomes["Annulations tardives"], outcomes["Patient absent"]) == (1, 1)
    assert outcomes["Séances où le patient était attendu"] == 1, "the cancelled session was not expected"
    assert _fees(db_session, late) == {} and _fees(db_session, missed) == {}


def test_no_job_records_attendance():
    """Recorded by a person, never automatically: the scheduler's jobs cannot reach the attendance rules, and none
    of them notes a no-show."""
    graph = grimp.build_graph("hub", "scheduling", "workflows", "connectors")
    assert not graph.chain_exists(importer="workflows.jobs", imported="workflows.attendance")
    assert "record_no_show" not in inspect.getsource(jobs)


# --- concurrency ------------------------------------------------------------------------------------------


@pytest.fixture
def committed_visit(committed):
    """A confirmed Monday visit in a territory of its own, committed, for several threads."""
    factory, created = committed
    with factory() as session:
        cpts = factories.cpts(session)
        created.append(cpts.id)
        t = factories.territory(session, cpts)
        visit = factories.visit(session, t, state=S.CONFIRMED, now=NOW)
        session.commit()
        ids = (visit.id, t.idel_user.id, t.coordinator.id)
    return factory, ids


def _record_at_once(factory, appointment_id: int, user_ids, answers: dict) -> list[str]:
    barrier = threading.Barrier(len(user_ids))
    outcomes: list[str] = []

    def record(user_id):
        barrier.wait()  # before the first statement: on SQLite it takes the write lock (BEGIN IMMEDIATE)
        with factory() as session:
            appointment = session.get_one(Appointment, appointment_id)
            try:
                attendance.record(
                    session, session.get_one(User, user_id), appointment, **answers, now=_during(appointment)
                )
                session.commit()
                outcomes.append("recorded")
            except InvalidTransition:
                session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=record, args=(user_id,)) for user_id in user_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.mark.concurrency
def test_two_people_recording_at_once_leave_one_row(committed_visit):
    factory, (appointment_id, *user_ids) = committed_visit
    answers = {"patient": True, "accompanying": False, "performer": True}
    assert _record_at_once(factory, appointment_id, user_ids, answers) == ["recorded", "recorded"]
    with factory() as session:
        rows = session.scalars(select(Attendance).where(Attendance.appointment_id == appointment_id)).all()
        assert len(rows) == 1


@pytest.mark.concurrency
def test_two_people_noting_the_patient_absent_at_once_make_one_no_show(committed_visit):
    factory, (appointment_id, *user_ids) = committed_visit
    answers = {"patient": False, "accompanying": True, "performer": True}
    assert sorted(_record_at_once(factory, appointment_id, user_ids, answers)) == ["recorded", "refused"]


def test_a_postponed_session_of_a_series_waits_until_booked_again_after_the_absence(db_session, territory, clock):
    """A patient booked into a series already has later sessions of the program: they are not the postponed
    session's rebooking; only a booking made after the absence was recorded is."""
    t = territory
    appointment = _held_session(db_session, t)
    later = factories.slot(db_session, t.program, (MONDAY_14H + dt.timedelta(days=14)).astimezone(dt.UTC))
    appointments.book(
        db_session, t.coordinator, slot=later, patient=t.patient, place_kind=appointment.place_kind, now=NOW
    )
    clock.move_to(_during(appointment))
    attendance.record(
        db_session, t.idel_user, appointment, patient=True, accompanying=True, performer=False, now=_during(appointment)
    )
    [item] = attendance.to_reschedule(db_session, t.cpts.id, now=NOW)
    assert item.appointment == appointment, "the series' next session is not its rebooking"


@pytest.mark.parametrize("absent_before_completion", [False, True])
def test_correcting_the_idel_to_present_gives_her_fee_back(db_session, territory, absent_before_completion):
    """Recorded absent by mistake, then present: the accompaniment fee is owed again, whether it was cancelled
    (recorded after completion) or never accrued (recorded before)."""
    t = territory
    appointment = (
        _held_session(db_session, t) if absent_before_completion else factories.visit(db_session, t, state=S.DONE)
    )
    answers = {"patient": True, "performer": True}
    attendance.record(db_session, t.coordinator, appointment, accompanying=False, now=_during(appointment), **answers)
    if absent_before_completion:
        completion.complete(db_session, t.coordinator, appointment, now=appointment.ends_at)
    assert _fees(db_session, appointment).get("TLL") in (None, FeeStatus.CANCELLED)
    later = appointment.ends_at + dt.timedelta(hours=2)
    attendance.record(db_session, t.coordinator, appointment, accompanying=True, now=later, **answers)
    assert _fees(db_session, appointment) == {"TC": FeeStatus.ACCRUED, "TLL": FeeStatus.ACCRUED}
