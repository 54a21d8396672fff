"""R12: the booking API honours an Idempotency-Key: the same request twice (also concurrently) makes one
booking and returns the same answer; the same key with another body is refused; a refused booking leaves
the key free for a retry."""

import datetime as dt
import json
import threading

import pytest
from sqlalchemy import event, func, select

from hub.db import utcnow
from hub.models import Appointment, IdempotentRequest, PlaceKind, Profession
from hub.services import accounts
from tests import factories
from tests.api.test_patients_api import assert_problem
from tests.api.test_write_paths import label
from tests.queries import forbid_flushes, forbid_lazy_loads, statements_on
from workflows import appointments

KEY = "3f1c7a52-5b3e-4d2a-9a57-0d4f0c1e9b21"


def booking(t, slot, **extra) -> dict:
    return {"slot_id": slot.id, "patient_id": t.patient.id, "place_kind": "lieu_dedie"} | extra


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def post(client, body, key=KEY):
    return client.client.post("/api/v1/appointments", json=body, headers=client.headers | {"Idempotency-Key": key})


def test_the_same_request_twice_makes_one_booking_and_the_same_answer(api_as, db_session, territory, clock, slot):
    client = api_as(territory.coordinator)
    first = post(client, booking(territory, slot))
    second = post(client, booking(territory, slot))
    assert (first.status_code, second.status_code) == (201, 201), second.get_json()
    assert second.get_json() == first.get_json()
    assert second.headers["Location"] == first.headers["Location"]
    assert "Idempotent-Replayed" not in first.headers and second.headers["Idempotent-Replayed"] == "true"
    assert count(db_session, Appointment) == 1
    stored = db_session.scalars(select(IdempotentRequest)).one()
    assert (stored.user_id, stored.key, stored.status, len(stored.request_hash)) == (
        territory.coordinator.id,
        KEY,
        201,
        64,
    )


def test_the_claim_and_the_answer_are_one_statement_each_with_nothing_left_to_flush(
    api_as, db_session, engine, territory, clock, slot
):
    """The claim is one INSERT (ON CONFLICT DO NOTHING), sent before the booking's read; the answer one UPDATE of
    that row; the replay the same INSERT, which inserts nothing, then one read of the stored answer. No ORM flush
    (issue 17, P7: the ORM's claim took a SELECT, a savepoint around its INSERT and the unit of work's UPDATE)."""
    client = api_as(territory.coordinator)
    assert client.get(f"/api/v1/patients/{territory.patient.id}").status_code == 200  # the token's first use
    answers, labels = [], []
    for attempt in ("first", "replay"):
        with forbid_lazy_loads(), forbid_flushes(), statements_on(engine) as seen:
            answers.append(post(client, booking(territory, slot)))
        labels.append([label(statement) for statement in seen if "idempotent_requests" in statement])
        if attempt == "first":
            assert [label(statement) for statement in seen][1:3] == [
                "INSERT idempotent_requests",
                "SELECT waiting_entries",  # the booking's read, after the claim
            ], seen
    assert [answer.status_code for answer in answers] == [201, 201]
    assert answers[1].get_json() == answers[0].get_json()
    assert labels == [
        ["INSERT idempotent_requests", "UPDATE idempotent_requests"],
        ["INSERT idempotent_requests", "SELECT idempotent_requests"],
    ]
    stored = db_session.scalars(select(IdempotentRequest)).one()
    assert json.loads(stored.body) == answers[0].get_json()
    assert stored.created_at == factories.NOW


def test_key_order_and_spacing_of_the_body_do_not_matter(api_as, db_session, territory, clock, slot):
    client = api_as(territory.coordinator)
    first = post(client, booking(territory, slot))
    reordered = dict(reversed(list(booking(territory, slot).items())))
    assert post(client, reordered).headers.get("Idempotent-Replayed") == "true"
    assert count(db_session, Appointment) == 1 and first.status_code == 201


def test_the_same_key_with_another_body_is_refused(api_as, db_session, territory, clock, slot):
    client = api_as(territory.coordinator)
    post(client, booking(territory, slot))
    body = assert_problem(post(client, booking(territory, slot, place_kind="cabinet")), 422)
    assert body["type"] == "/problems/idempotency-key-reused" and "nouvelle clé" in body["detail"]
    assert count(db_session, Appointment) == 1


def test_a_refused_booking_leaves_the_key_free_for_a_retry(api_as, db_session, territory, clock, slot):
    blocker = appointments.book(
        db_session,
        territory.coordinator,
        slot=slot,
        patient=factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator),
        place_kind=PlaceKind.DEDICATED_PLACE,
        accompanying=territory.other_idel,
    )
    db_session.commit()
    client = api_as(territory.coordinator)
    assert_problem(post(client, booking(territory, slot)), 409)
    assert count(db_session, IdempotentRequest) == 0, "the claim went with the refused booking"
    appointments.cancel(db_session, territory.coordinator, blocker, reason="Erreur de saisie")
    db_session.commit()
    retried = post(client, booking(territory, slot))
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers
    assert count(db_session, IdempotentRequest) == 1


def test_keys_belong_to_their_user(api_as, db_session, territory, clock, slot):
    post(api_as(territory.coordinator), booking(territory, slot))
    colleague = factories.coordinator(db_session, territory.cpts)
    later = factories.slot(db_session, territory.program, slot.starts_at + dt.timedelta(hours=1))
    other = factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator)
    response = post(api_as(colleague), booking(territory, later, patient_id=other.id))
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert count(db_session, Appointment) == 2


@pytest.mark.parametrize("key", ["", "x" * 201, "clé-accentuée"])
def test_a_malformed_key_is_refused(api_as, db_session, territory, clock, slot, key):
    body = assert_problem(post(api_as(territory.coordinator), booking(territory, slot), key=key), 422)
    assert "Idempotency-Key" in body["errors"]
    assert count(db_session, Appointment) == 0


@pytest.mark.concurrency
def test_the_same_request_sent_concurrently_makes_one_booking(app, committed):
    """Two clients send the same booking at the same instant: one books, the other waits for it on the
    claim (unique index, or SQLite's write lock) and replays its answer; neither meets the booking conflict."""
    factory, created = committed
    start = (utcnow() + dt.timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        coordinator = factories.coordinator(session, org)
        program = factories.program(session, org)
        slot = factories.slot(session, program, start)
        patient = factories.consenting_patient(session, org, recorded_by=coordinator)
        idel = factories.professional(session, org, Profession.NURSE, accompanies_teleconsultation=True)
        factories.in_care_team(session, patient, idel)
        tokens = [accounts.create_api_token(session, coordinator, name=f"poste {n}")[1] for n in range(2)]
        session.commit()
        body = {"slot_id": slot.id, "patient_id": patient.id, "place_kind": "lieu_dedie"}
        program_id = program.id

    barrier = threading.Barrier(2)
    answers: list = []

    def send(token):
        client = app.test_client()
        barrier.wait()
        response = client.post(
            "/api/v1/appointments",
            json=body,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": KEY},
        )
        answers.append((response.status_code, response.get_json(), response.headers.get("Idempotent-Replayed")))

    threads = [threading.Thread(target=send, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert [status for status, _body, _replayed in answers] == [201, 201], answers
    assert answers[0][1] == answers[1][1]
    assert sorted(replayed or "" for _s, _b, replayed in answers) == ["", "true"]
    with factory() as session:
        booked = session.scalars(select(Appointment).where(Appointment.program_id == program_id)).all()
        assert [a.id for a in booked] == [answers[0][1]["id"]]
        claims = session.scalars(select(IdempotentRequest).where(IdempotentRequest.user_id == coordinator.id)).all()
        assert [(c.key, c.status) for c in claims] == [(KEY, 201)]


def test_a_key_purged_between_the_claim_and_its_read_is_claimed_anew(
    api_as, db_session, engine, territory, clock, slot
):
    """The retention purge may delete a stored key between the claim's INSERT (which met it) and the read of its
    answer: the key is claimed again, as a new one, rather than answered 500."""
    client = api_as(territory.coordinator)
    assert post(client, booking(territory, slot)).status_code == 201
    purged = []

    def purge_before_the_read(_conn, cursor, statement, *_args):
        if statement.startswith("SELECT") and "idempotent_requests" in statement and not purged:
            cursor.execute("DELETE FROM idempotent_requests")
            purged.append(statement)

    event.listen(engine, "before_cursor_execute", purge_before_the_read)
    try:
        with statements_on(engine) as seen:
            answer = post(client, booking(territory, slot))
    finally:
        event.remove(engine, "before_cursor_execute", purge_before_the_read)
    claims = [label(statement) for statement in seen if "idempotent_requests" in statement]
    assert claims == ["INSERT idempotent_requests", "SELECT idempotent_requests", "INSERT idempotent_requests"]
    # A new request now: the booking runs again and meets the one the forgotten key made.
    assert answer.status_code == 409 and "idempotence" not in answer.get_json()["detail"], answer.get_json()
