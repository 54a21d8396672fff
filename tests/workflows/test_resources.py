"""Kits, rooms and dedicated places as the booking and the retirement see them: a retired kit (or place) is never
booked again; a resource is retired only once no running program and no upcoming appointment counts on it; the
upcoming bookings of many resources are read together."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from hub.errors import RuleViolation
from hub.models import Appointment, ResourceKind
from hub.services import resources
from tests import factories
from tests.factories import MONDAY_14H, NOW
from tests.workflows.test_appointments import book


@pytest.fixture
def kit(db_session, territory):
    row = factories.resource(db_session, territory.cpts, name="Mallette ECG connectée n° 1")
    territory.program.kit_id, territory.program.slot_interval_minutes = row.id, 60
    db_session.flush()
    return row


@pytest.mark.parametrize("kind", [ResourceKind.KIT, ResourceKind.DEDICATED_PLACE])
def test_a_retired_kit_or_place_cannot_be_booked(db_session, territory, kind):
    # A program past its last day when its kit was retired, extended since: its kit is still the retired one.
    resource = factories.resource(db_session, territory.cpts, kind, is_active=False, retired_at=NOW)
    field = "kit_id" if kind is ResourceKind.KIT else "room_id"
    setattr(territory.program, field, resource.id)
    db_session.flush()
    with pytest.raises(RuleViolation) as refused:
        book(db_session, territory)
    assert refused.value.detail == (
        f"« {resource.name} » est retiré(e) : choisissez un autre matériel ou lieu pour le programme avant de réserver."
    )
    assert db_session.scalar(select(func.count()).select_from(Appointment)) == 0


def test_a_kit_in_service_is_booked_over_the_accompaniment_window(db_session, territory, kit):
    appointment = book(db_session, territory)
    upcoming = resources.upcoming_bookings(db_session, [kit.id], now=NOW)[kit.id]
    assert upcoming.total == 1
    (held,) = upcoming.first
    assert (held.appointment.id, held.starts_at, held.ends_at) == (
        appointment.id,
        (MONDAY_14H - dt.timedelta(minutes=20)).astimezone(dt.UTC),
        (MONDAY_14H + dt.timedelta(minutes=40)).astimezone(dt.UTC),
    )


def test_upcoming_bookings_keep_the_first_of_each_resource_and_count_them_all(db_session, territory, kit):
    other = factories.resource(db_session, territory.cpts, ResourceKind.ROOM, name="Salle 2")
    for hours in range(4):
        book(
            db_session,
            territory,
            MONDAY_14H + dt.timedelta(hours=hours),
            patient=factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator),
        )
    found = resources.upcoming_bookings(db_session, [kit.id, other.id], now=NOW, first=2)
    assert (found[kit.id].total, len(found[kit.id].first)) == (4, 2)
    assert found[kit.id].first[0].starts_at < found[kit.id].first[1].starts_at
    assert (found[other.id].total, found[other.id].first) == (0, [])
    later = MONDAY_14H.astimezone(dt.UTC) + dt.timedelta(hours=2)
    assert resources.upcoming_bookings(db_session, [kit.id], now=later)[kit.id].total == 2


def test_a_kit_of_a_program_past_its_last_day_may_be_retired(db_session, territory, kit):
    territory.program.valid_until = NOW.date() - dt.timedelta(days=1)
    resources.retire_resource(db_session, territory.coordinator, kit, now=NOW)
    assert (kit.is_active, kit.retired_at) == (False, NOW)


def test_a_kit_of_a_running_program_is_not_retired(db_session, territory, kit):
    with pytest.raises(RuleViolation) as refused:
        resources.retire_resource(db_session, territory.coordinator, kit, now=NOW)
    assert refused.value.extra == {
        "programs": [{"id": territory.program.id, "name": territory.program.name}],
        "upcoming_bookings": 0,
    }
    assert kit.is_active
