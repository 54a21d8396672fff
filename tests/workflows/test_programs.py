import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from hub.errors import Conflict, RuleViolation, ValidationFailed
from hub.models import Allocation, AppointmentState, PlaceKind, ProgramKind, Slot, SlotState
from scheduling.agenda import day_bounds, professional_agenda
from scheduling.slots import generate_slots
from tests import ZONE, factories
from tests.factories import PARIS
from workflows import appointments, programs

JAN_2026 = dt.datetime(2026, 1, 1, 9, tzinfo=PARIS)


def new_program(db_session, t, **overrides):
    data = {
        "name": "Téléconsultation cardiologie CH Périgueux",
        "kind": ProgramKind.ASSISTED_TELECONSULTATION,
        "performer_id": t.cardiologist.id,
        "rrule": "FREQ=WEEKLY;BYDAY=MO",
        "first_day": dt.date(2026, 1, 1),
        "time_of_day": dt.time(14, 0),
        "slot_count": 3,
        "slot_minutes": 15,
        "accompaniment_before_minutes": 20,
        "accompaniment_after_minutes": 25,
    }
    return programs.create_program(db_session, t.coordinator, data | overrides, now=JAN_2026, zone=ZONE)


def slot_starts(db_session, program, *, state=None):
    query = select(Slot.starts_at).where(Slot.program_id == program.id).order_by(Slot.starts_at)
    if state is not None:
        query = query.where(Slot.state == state)
    return list(db_session.scalars(query))


def local(instant):
    return instant.astimezone(PARIS)


def test_twelve_weeks_of_monday_slots_without_public_holidays(db_session, territory):
    program = new_program(db_session, territory, first_day=dt.date(2026, 3, 2))
    starts = slot_starts(db_session, program)
    mondays = sorted({local(s).date() for s in starts})
    assert program.start_local == dt.datetime(2026, 3, 2, 14, 0)
    assert all(d.weekday() == 0 for d in mondays)
    assert dt.date(2026, 4, 6) not in mondays, "Easter Monday"
    assert dt.date(2026, 5, 25) not in mondays, "Whit Monday"
    assert {(local(s).hour, local(s).minute) for s in starts} == {(14, 0), (14, 15), (14, 30)}
    assert len(starts) == 3 * len(mondays)


def test_first_day_snaps_to_the_first_occurrence(db_session, territory):
    program = new_program(db_session, territory, first_day=dt.date(2026, 1, 1))  # a Thursday
    assert program.start_local == dt.datetime(2026, 1, 5, 14, 0)


def test_generation_is_idempotent(db_session, territory):
    program = new_program(db_session, territory)
    before = slot_starts(db_session, program)
    report = generate_slots(db_session, program, now=JAN_2026)
    assert (report.created, report.removed) == (0, 0)
    assert slot_starts(db_session, program) == before


def test_rolling_horizon_adds_the_next_week(db_session, territory):
    program = new_program(db_session, territory)
    count = len(slot_starts(db_session, program))
    report = generate_slots(db_session, program, now=JAN_2026 + dt.timedelta(days=7))
    assert report.created == 3
    assert len(slot_starts(db_session, program)) == count + 3


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"rrule": "FREQ=HOURLY"}, "rrule"),
        ({"rrule": "n'importe quoi"}, "rrule"),
        ({"performer_id": None}, "performer_id"),
        ({"valid_until": dt.date(2025, 12, 1)}, "valid_until"),
    ],
)
def test_bad_programs_are_refused_with_french_messages(db_session, territory, data, field):
    with pytest.raises(ValidationFailed) as caught:
        new_program(db_session, territory, **data)
    assert field in caught.value.errors


def test_a_kine_cannot_run_assisted_cardiology(db_session, territory):
    kine = factories.professional(db_session, territory.cpts, factories.Profession.PHYSIOTHERAPIST)
    with pytest.raises(ValidationFailed) as caught:
        new_program(db_session, territory, performer_id=kine.id)
    assert "ne peut pas réaliser" in caught.value.errors["performer_id"]
    program = new_program(db_session, territory, performer_id=kine.id, kind=ProgramKind.TELESOIN)
    assert program.kind is ProgramKind.TELESOIN


def book_first(db_session, t, program, index=0):
    slot_start = slot_starts(db_session, program)[index]
    slot = db_session.scalar(select(Slot).where(Slot.program_id == program.id, Slot.starts_at == slot_start))
    return appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=JAN_2026
    )


def test_whole_series_change_keeps_booked_slots_and_reports_them(db_session, territory):
    program = new_program(db_session, territory)
    booked = book_first(db_session, territory, program)
    report = programs.update_series(
        db_session, territory.coordinator, program, {"time_of_day": dt.time(15, 0)}, now=JAN_2026
    )
    assert [s.id for s in report.booked_no_longer_fitting] == [booked.slot_id]
    open_times = {(local(s).hour, local(s).minute) for s in slot_starts(db_session, program)}
    assert (15, 0) in open_times and (14, 15) not in open_times
    assert (14, 0) in open_times, "the booked 14:00 slot stays until the coordinator moves it"
    assert booked.state is AppointmentState.PROPOSED


def test_this_and_following_splits_the_series_and_keeps_exceptions(db_session, territory):
    program = new_program(db_session, territory)
    first_starts = slot_starts(db_session, program)
    excluded = first_starts[3 * 5]  # the 6th Monday
    programs.cancel_occurrence(
        db_session, territory.coordinator, program, occurrence_start=excluded, reason="Congrès", now=JAN_2026
    )
    split_day = local(first_starts[3 * 3]).date()  # from the 4th Monday on
    new, _report = programs.split_series(
        db_session, territory.coordinator, program, from_day=split_day, changes={"slot_count": 2}, now=JAN_2026
    )
    old_days = {local(s).date() for s in slot_starts(db_session, program)}
    new_starts = slot_starts(db_session, new)
    assert max(old_days) < split_day <= min(local(s).date() for s in new_starts)
    assert excluded not in new_starts, "the cancelled occurrence stays cancelled in the new series"
    per_day = {}
    for s in new_starts:
        per_day[local(s).date()] = per_day.get(local(s).date(), 0) + 1
    assert set(per_day.values()) == {2}


def test_one_occurrence_moves_and_the_rest_stays(db_session, territory):
    program = new_program(db_session, territory)
    occurrence = slot_starts(db_session, program)[3]
    moved = programs.move_occurrence(
        db_session,
        territory.coordinator,
        program,
        occurrence_start=occurrence,
        new_start_local=local(occurrence).replace(tzinfo=None) + dt.timedelta(days=1),
        now=JAN_2026,
    )
    assert all(local(s.starts_at).weekday() == 1 and s.is_exception for s in moved)
    report = generate_slots(db_session, program, now=JAN_2026)
    assert report.created == 0, "the EXDATE keeps the rule from bringing the Monday back"
    assert occurrence not in slot_starts(db_session, program)


def test_a_booked_occurrence_cannot_be_moved(db_session, territory):
    program = new_program(db_session, territory)
    booked = book_first(db_session, territory, program)
    with pytest.raises(RuleViolation):
        programs.move_occurrence(
            db_session,
            territory.coordinator,
            program,
            occurrence_start=booked.slot.occurrence_start,
            new_start_local=dt.datetime(2026, 1, 6, 14),
            now=JAN_2026,
        )


def test_moving_to_a_non_existent_local_time_says_so(db_session, territory):
    program = new_program(db_session, territory)
    occurrence = slot_starts(db_session, program)[0]
    with pytest.raises(ValidationFailed) as caught:
        programs.move_occurrence(
            db_session,
            territory.coordinator,
            program,
            occurrence_start=occurrence,
            new_start_local=dt.datetime(2026, 3, 29, 2, 30),
            now=JAN_2026,
        )
    assert "n'existe pas" in caught.value.errors["new_start"]


def test_cancelling_an_occurrence_cancels_its_appointments_and_notifies(db_session, territory):
    program = new_program(db_session, territory)
    booked = book_first(db_session, territory, program)
    count = programs.cancel_occurrence(
        db_session,
        territory.coordinator,
        program,
        occurrence_start=booked.slot.occurrence_start,
        reason="Cardiologue absente",
        now=JAN_2026,
    )
    assert count == 1 and booked.state is AppointmentState.CANCELLED
    assert json.loads(program.exdates) == [booked.slot.occurrence_start.isoformat()]
    assert db_session.get(Slot, booked.slot_id).state is SlotState.CANCELLED


def test_cancelling_the_series_leaves_nothing_behind(db_session, territory):
    program = new_program(db_session, territory)
    booked = book_first(db_session, territory, program)
    programs.cancel_series(db_session, territory.coordinator, program, reason="Fin du partenariat", now=JAN_2026)
    assert booked.state is AppointmentState.CANCELLED
    assert slot_starts(db_session, program, state=SlotState.OPEN) == []
    assert db_session.scalar(select(func.count()).select_from(Allocation)) == 0
    assert generate_slots(db_session, program, now=JAN_2026).created == 0


def test_the_appointments_a_stop_would_cancel_are_counted_and_a_stopped_series_stays_stopped(db_session, territory):
    program = new_program(db_session, territory)
    book_first(db_session, territory, program)
    assert programs.bookings_to_cancel(db_session, program, now=JAN_2026) == 1
    assert programs.cancel_series(db_session, territory.coordinator, program, reason="Fin", now=JAN_2026) == 1
    assert programs.bookings_to_cancel(db_session, program, now=JAN_2026) == 0
    with pytest.raises(Conflict, match="déjà arrêtée"):
        programs.cancel_series(db_session, territory.coordinator, program, reason="Encore", now=JAN_2026)


def test_closure_removes_the_free_slots_of_the_period(db_session, territory):
    program = new_program(db_session, territory)
    programs.add_closure(
        db_session,
        territory.coordinator,
        program,
        first_day=dt.date(2026, 2, 1),
        last_day=dt.date(2026, 2, 28),
        reason="Congés",
        now=JAN_2026,
    )
    assert not [s for s in slot_starts(db_session, program) if local(s).month == 2]


@pytest.mark.parametrize(("day", "hours"), [(dt.date(2026, 3, 29), 23), (dt.date(2026, 10, 25), 25)])
def test_day_agenda_on_change_days_holds_exactly_that_local_day(db_session, territory, day, hours):
    """T10: bookings 30 minutes after local midnight and before the next are in; those just outside are out."""
    t = territory
    start, end = day_bounds(day, "Europe/Paris")
    assert end - start == dt.timedelta(hours=hours)
    program = factories.program(
        db_session,
        t.cpts,
        performer=t.cardiologist,
        kind=ProgramKind.TELESOIN,
        accompaniment_before_minutes=0,
        accompaniment_after_minutes=0,
    )

    def book_at(instant):
        patient = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
        return appointments.book(
            db_session,
            t.coordinator,
            slot=factories.slot(db_session, program, instant),
            patient=patient,
            place_kind=PlaceKind.PRACTICE,
            now=start - dt.timedelta(days=3),
        )

    half_hour = dt.timedelta(minutes=30)
    inside = [book_at(start + half_hour), book_at(end - half_hour)]
    book_at(start - half_hour)
    book_at(end)
    agenda = professional_agenda(db_session, t.cardiologist.id, start, end)
    assert [a.id for a in agenda] == [a.id for a in inside]


def test_a_bad_rule_on_a_series_edit_is_a_french_error(db_session, territory):
    program = new_program(db_session, territory)
    with pytest.raises(ValidationFailed) as caught:
        programs.update_series(db_session, territory.coordinator, program, {"rrule": "FREQ=MINUTELY"}, now=JAN_2026)
    assert "rrule" in caught.value.errors
