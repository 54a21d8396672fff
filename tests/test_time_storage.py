"""T9: an aware datetime round-trips through the ORM as the same instant, on SQLite and PostgreSQL."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from hub.models import Role, UserSession
from tests import factories

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    "instant",
    [
        dt.datetime(2026, 3, 29, 3, 30, tzinfo=PARIS),
        dt.datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=PARIS),
        dt.datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=PARIS),
        dt.datetime(2026, 12, 31, 23, 30, 15, 123456, tzinfo=PARIS),
        dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC),
    ],
)
def test_aware_datetime_round_trips(db_session, cpts, instant):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    row = UserSession(id=f"t9-{instant.timestamp()}", user_id=user.id, created_at=instant, last_seen_at=instant)
    db_session.add(row)
    db_session.commit()
    db_session.expire_all()
    loaded = db_session.get(UserSession, row.id)
    # Compare instants: PEP 495 makes == False across zones for a time in a DST fold, even when equal.
    assert loaded.created_at.timestamp() == instant.timestamp()
    assert loaded.created_at == instant.astimezone(dt.UTC)
    assert loaded.created_at.utcoffset() == dt.timedelta(0)


def test_naive_datetime_is_refused(db_session, cpts):
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    db_session.add(UserSession(id="naive", user_id=user.id, created_at=dt.datetime(2026, 1, 1)))
    with pytest.raises(Exception, match="naive"):
        db_session.flush()
