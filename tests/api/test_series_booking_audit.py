"""A series booked occurrence by occurrence, each in its savepoint: an occurrence refused rolls back its own
audit rows only; those of the occurrences booked before it (here the attested in-person date of a télésoin) are
kept with them (review finding 2)."""

import pytest
from sqlalchemy import func, select

from hub.errors import Conflict
from hub.models import AuditEvent, Profession
from scheduling.slots import generate_slots
from tests import factories
from tests.api.test_remote_share_override_api import KINE_ACT
from tests.api.test_series_bookings_api import FIRST, slot_at
from tests.factories import NOW
from workflows import series_booking

pytestmark = pytest.mark.usefixtures("clock")


@pytest.mark.parametrize("refused", [0, 1], ids=["first-refused", "second-refused"])
def test_an_occurrence_refused_keeps_the_audit_rows_of_the_others(api_as, db_session, territory, monkeypatch, refused):
    kine = factories.professional(db_session, territory.cpts, Profession.PHYSIOTHERAPIST, does_telesoin=True)
    program = factories.program(db_session, territory.cpts, telesoin=True, performer=kine, slot_minutes=30)
    generate_slots(db_session, program, now=NOW)
    db_session.commit()
    booked_by_hand = []

    def taken_meanwhile(session, actor, series, slot, *, now):
        # The slot was taken by a concurrent booking after the check: the occurrence's savepoint rolls back.
        booked_by_hand.append(real(session, actor, series, slot, now=now))
        if len(booked_by_hand) == refused + 1:
            raise Conflict("Ce créneau vient d'être réservé.")
        return booked_by_hand[-1]

    real = series_booking._book_one
    monkeypatch.setattr(series_booking, "_book_one", taken_meanwhile)
    body = {
        "slot_id": slot_at(db_session, program, FIRST).id,
        "patient_id": territory.patient.id,
        "place_kind": "domicile",
        "every": 1,
        "count": 2,
        "all_or_nothing": False,
        **KINE_ACT,
    }
    audited_before = db_session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
    response = api_as(territory.coordinator).post("/api/v1/series-bookings", json=body)
    assert response.status_code == 201, response.get_json()
    assert len(response.get_json()["booked"]) == 1 and len(response.get_json()["left_out"]) == 1
    first = booked_by_hand[1 - refused]
    actions = db_session.scalars(
        select(AuditEvent.action).where(
            AuditEvent.id > audited_before,  # audit rows outlive a test's cleanup: SQLite may reuse this id
            AuditEvent.target_type == "appointments",
            AuditEvent.target_id == str(first.id),
        )
    ).all()
    assert sorted(actions) == ["appointment.book", "appointment.in_person_attested"]
    series_row = db_session.scalars(
        select(AuditEvent).where(AuditEvent.id > audited_before, AuditEvent.action == "appointment.book_series")
    ).one()
    assert '"left_out": 1' in series_row.details
