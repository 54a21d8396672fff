"""PostgreSQL's one-statement booking (scheduling.bookings.insert_holding) on a conflict: it names the hold the
exclusion constraint refused, whichever it was, and leaves neither the appointment nor any of its holds nor the rows
inserted with it. The rows inserted with it hold its id, in their texts too, built around it by the statement."""

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from connectors import outbox
from hub import audit
from hub.db import NEW_ID, IdText, json_text, with_new_id
from hub.models import Allocation, AllocationResource, Appointment, AuditEvent, OutboxMessage
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

    audited_before = db_session.scalar(select(func.count()).select_from(AuditEvent))
    messages_before = db_session.scalar(select(func.count()).select_from(OutboxMessage))

    with pytest.raises(BookingConflict) as refused:
        bookings.insert_holding(
            db_session, table, row, [free, taken], zone="Europe/Paris", dependents=_dependents(territory, "refused")
        )

    assert refused.value.extra["resource"]["kind"] == "patient"
    assert db_session.scalar(select(func.count()).select_from(Appointment)) == appointments_before
    assert db_session.scalar(select(func.count()).select_from(Allocation)) == allocations_before
    # The audit row of a refused booking is never written (the application may not delete one), nor its e-mail.
    assert db_session.scalar(select(func.count()).select_from(AuditEvent)) == audited_before
    assert db_session.scalar(select(func.count()).select_from(OutboxMessage)) == messages_before


# Digits and a stand-in's look in the texts around the id: kept as they are (no text is searched for the id).
AROUND = "offer 918273645 NEW_ID "


def _dependents(territory, name: str) -> list:
    key = f"{name}:{AROUND}" + IdText(after=f":{AROUND}")
    payload = {"appointment_id": NEW_ID, "note": AROUND, "zz": {"b": 1, "a": "é"}}
    email = outbox.email_row(territory.idel, kind="test", payload=payload, key=key, cpts_id=territory.cpts.id)
    event = audit.event_row(
        actor=territory.coordinator,
        action="test.dependents",
        target=("appointments", NEW_ID),
        details={"note": AROUND},
    )
    return [(OutboxMessage.__table__, email), (AuditEvent.__table__, event)]


def _written(db_session, name: str, new_id: int) -> tuple:
    message = db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.idempotency_key.like(f"test:{name}:%"))
    ).one()
    event = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "test.dependents", AuditEvent.target_id == str(new_id))
    ).one()
    return (
        message.idempotency_key,
        message.payload,
        message.recipient,
        event.target_type,
        event.target_id,
        event.details,
    )


def test_rows_inserted_with_the_owner_hold_its_id_as_sent_apart(clock, db_session, engine, territory, visit):
    """On PostgreSQL the statement builds the texts around the new id; elsewhere (and for a group session's seat)
    with_new_id builds them in Python: the same rows, and the texts json.dumps and an f-string would have written."""
    table = Appointment.__table__
    later = dt.timedelta(days=30)
    row = {column.key: getattr(visit, column.key) for column in table.c if column.key not in SKIPPED}
    row |= {
        key: row[key] + later for key in ("starts_at", "ends_at", "accompaniment_starts_at", "accompaniment_ends_at")
    }
    holds = [Hold(AllocationResource.PATIENT, territory.patient.id, row["starts_at"], row["ends_at"])]
    dependents = _dependents(territory, "kept")
    if engine.dialect.name == "postgresql":
        new_id = bookings.insert_holding(db_session, table, row, holds, zone="Europe/Paris", dependents=dependents)[
            "id"
        ]
    else:
        new_id = db_session.execute(table.insert().returning(table.c.id), row).scalar_one()
        for other, values in with_new_id(dependents, new_id):
            db_session.execute(other.insert(), values)

    payload = {"appointment_id": new_id, "note": AROUND, "zz": {"b": 1, "a": "é"}, "professional_id": territory.idel.id}
    assert _written(db_session, "kept", new_id) == (
        f"test:kept:{AROUND}{new_id}:{AROUND}",
        json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str),
        territory.idel.email,
        "appointments",
        str(new_id),
        json.dumps({"note": AROUND}),
    )


@pytest.mark.parametrize(
    "value",
    [
        {"appointment_id": NEW_ID},
        {"z": 1, "appointment_id": NEW_ID, "b": "NEW_ID 123", "c": None, "d": [1, "é"], "e": {"y": 2, "x": 1}},
        {"first": NEW_ID, "when": dt.date(2027, 3, 1)},
    ],
)
def test_json_text_writes_what_json_dumps_writes(value):
    text = json_text(value)
    assert isinstance(text, IdText)
    given = {key: 4021 if member is NEW_ID else member for key, member in value.items()}
    assert text.of_id(4021) == json.dumps(given, sort_keys=True, ensure_ascii=False, default=str)


@pytest.mark.parametrize(
    "value",
    [
        {"a": {"id": NEW_ID}},  # nested: str() would have stored the word "NEW_ID"
        {"ids": [NEW_ID]},
        {1: NEW_ID},  # json.dumps writes the key "1": written as it is, the text would not be JSON
    ],
)
def test_json_text_refuses_a_new_id_it_cannot_place(value):
    with pytest.raises(TypeError):
        json_text(value)


def test_an_audit_rows_details_refuse_a_new_id(territory):
    with pytest.raises(TypeError):
        audit.event_row(actor=territory.coordinator, action="test.dependents", details={"appointment_id": NEW_ID})


def test_an_overlong_text_inserted_with_the_owner_is_refused_not_cut(clock, db_session, engine, territory, visit):
    if engine.dialect.name != "postgresql":
        pytest.skip("the one-statement booking is PostgreSQL's")
    from sqlalchemy.exc import DataError

    table = Appointment.__table__
    row = {column.key: getattr(visit, column.key) for column in table.c if column.key not in SKIPPED}
    row |= {key: row[key] + dt.timedelta(days=40) for key in ("starts_at", "ends_at")}
    row |= {k: row[k] and row[k] + dt.timedelta(days=40) for k in ("accompaniment_starts_at", "accompaniment_ends_at")}
    holds = [Hold(AllocationResource.PATIENT, territory.patient.id, row["starts_at"], row["ends_at"])]
    email, event = (values for _table, values in _dependents(territory, "long"))
    limit = OutboxMessage.__table__.c.idempotency_key.type.length
    overlong = [
        (OutboxMessage.__table__, email | {"idempotency_key": "k" * limit + IdText()}),  # built around the id
        (AuditEvent.__table__, event | {"action": "a" * (AuditEvent.__table__.c.action.type.length + 1)}),  # a value
    ]
    for dependent in overlong:
        with pytest.raises(DataError), db_session.begin_nested():
            bookings.insert_holding(db_session, table, row, holds, zone="Europe/Paris", dependents=[dependent])
