"""PostgreSQL's one-statement booking (scheduling.bookings.insert_holding) on a conflict: it names the hold the
exclusion constraint refused, whichever it was, and leaves neither the appointment nor any of its holds."""

import pytest
from sqlalchemy import func, select

from hub.models import Allocation, AllocationResource, Appointment
from scheduling import bookings
from scheduling.bookings import BookingConflict, Hold

SKIPPED = ("id", "created_at", "updated_at")


def test_a_refused_hold_that_is_not_the_first_is_named_and_nothing_stays(clock, db_session, engine, territory, visit):
    if engine.dialect.name != "postgresql":
        pytest.skip("the one-statement booking is PostgreSQL's; SQLite books through the ORM")
    table = Appointment.__table__
    row = {column.key: getattr(visit, column.key) for column in table.c if column.key not in SKIPPED}
    # The patient is held by `visit`; the other IDEL is free then: her hold goes in first, then is taken back.
    free = Hold(AllocationResource.PROFESSIONAL, territory.other_idel.id, visit.starts_at, visit.ends_at)
    taken = Hold(AllocationResource.PATIENT, territory.patient.id, visit.starts_at, visit.ends_at)
    appointments_before = db_session.scalar(select(func.count()).select_from(Appointment))
    allocations_before = db_session.scalar(select(func.count()).select_from(Allocation))

    with pytest.raises(BookingConflict) as refused:
        bookings.insert_holding(db_session, table, row, [free, taken], zone="Europe/Paris")

    assert refused.value.extra["resource"]["kind"] == "patient"
    assert db_session.scalar(select(func.count()).select_from(Appointment)) == appointments_before
    assert db_session.scalar(select(func.count()).select_from(Allocation)) == allocations_before
