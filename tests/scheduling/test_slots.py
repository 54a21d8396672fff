"""scheduling.slots writes and compares slots as the driver's values (P5): those values must be exactly what the
models' types would have written, on SQLite and PostgreSQL alike, or the idempotent re-run would see other rows."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import String, select, text, type_coerce

from hub.models import Slot, SlotState
from scheduling import slots
from tests import factories

PARIS = ZoneInfo("Europe/Paris")
NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)  # the window holds the change of 29 March 2026


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 3, 30, 14, 0, tzinfo=PARIS),
        dt.datetime(2026, 7, 6, 9, 15, tzinfo=PARIS),  # summer time
    ],
)
def test_the_rows_keys_are_what_the_orm_stores(db_session, cpts, value):
    """The re-run compares the rule's rows with the stored slots as the driver gives them back: a slot the ORM
    wrote at the same instant (a move by hand, an older version of the hub) has the same key."""
    program = factories.program(db_session, cpts)
    end = value.astimezone(dt.UTC) + dt.timedelta(minutes=15)
    db_session.add(Slot(program_id=program.id, occurrence_start=value, position=0, starts_at=value, ends_at=end))
    db_session.flush()
    stored = db_session.scalar(select(type_coerce(Slot.starts_at, String)).where(Slot.program_id == program.id))
    sqlite = db_session.get_bind().dialect.name == "sqlite"
    program.start_local, program.rrule = value.astimezone(PARIS).replace(tzinfo=None, fold=0), "FREQ=DAILY;COUNT=1"
    program.valid_from, program.skip_public_holidays = value.astimezone(PARIS).date(), False
    rows = slots._wanted_rows(program, value - dt.timedelta(days=1), value + dt.timedelta(days=1), sqlite=sqlite)
    assert stored in rows


def test_written_slots_read_back_as_the_rule_says_and_a_second_run_creates_none(db_session, cpts):
    program = factories.program(db_session, cpts, horizon_weeks=8)
    report = slots.generate_slots(db_session, program, now=NOW)
    wanted = slots.wanted_slot_times(program, NOW, NOW + dt.timedelta(weeks=8))
    stored = db_session.scalars(select(Slot).where(Slot.program_id == program.id).order_by(Slot.starts_at)).all()
    assert report.created == len(wanted) == len(stored) == 7 * 3  # 8 Mondays, Easter Monday (6 April) skipped
    assert [(s.occurrence_start, s.position, s.starts_at, s.ends_at) for s in stored] == sorted(wanted)
    assert {(s.state, s.is_exception) for s in stored} == {(SlotState.OPEN, False)}
    # T1 across the change: Monday 14:00 Paris is 13:00Z in winter, 12:00Z in summer.
    assert {s.starts_at.astimezone(PARIS).time() for s in stored if s.position == 0} == {dt.time(14, 0)}
    assert {s.starts_at.hour for s in stored if s.position == 0} == {13, 12}
    assert report.created_starts == [start for _occurrence, _position, start, _end in wanted]

    again = slots.generate_slots(db_session, program, now=NOW)
    assert (again.created, again.removed) == (0, 0)


def test_a_slot_written_by_the_orm_is_recognised(db_session, cpts):
    """The comparison of the re-run reads starts_at raw: a slot the ORM wrote (a move by hand, an older version
    of the hub) must compare equal to the rule's time."""
    program = factories.program(db_session, cpts, horizon_weeks=2)
    (occurrence, position, start, end), *_rest = slots.wanted_slot_times(program, NOW, NOW + dt.timedelta(weeks=2))
    db_session.add(
        Slot(program_id=program.id, occurrence_start=occurrence, position=position, starts_at=start, ends_at=end)
    )
    db_session.flush()
    report = slots.generate_slots(db_session, program, now=NOW)
    assert report.created == 2 * 3 - 1 and report.removed == 0
    count = db_session.execute(text("SELECT count(*) FROM slots WHERE program_id = :id"), {"id": program.id}).scalar()
    assert count == 2 * 3
