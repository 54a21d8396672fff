"""`/api/v1/outbox` for the coordination and the admin: list with filters and pages, read one, re-queue a
dead message; problem+json errors; no payload ever; the same queries whatever the page size."""

import datetime as dt

import pytest
from sqlalchemy import select

from hub.db import utcnow
from hub.models import AuditEvent, OutboxMessage, OutboxState
from hub.schemas.outbox import OutboxMessageOut, outbox_message_json
from hub.services import accounts, outbox_messages
from tests import factories
from tests.api.test_desk_api import light_statements
from tests.api.test_patients_api import assert_problem
from tests.queries import count_queries
from tests.web.test_outbox_pages import HEALTH_MARKER, build_outbox_world, fill, message


@pytest.fixture
def outbox_world(db_session, cpts):
    return build_outbox_world(db_session, cpts)


def test_the_list_shows_the_cpts_messages_newest_first(api_as, coordinator, outbox_world):
    response = api_as(coordinator).get("/api/v1/outbox")

    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 5 and (body["page"], body["per_page"]) == (1, 50)
    ids = [item["id"] for item in body["items"]]
    assert ids == sorted(ids, reverse=True)
    assert outbox_world["elsewhere"].id not in ids
    refused = next(item for item in body["items"] if item["id"] == outbox_world["refused"].id)
    assert refused == {
        "id": outbox_world["refused"].id,
        "channel": "mssante",
        "recipient": outbox_world["refused"].recipient,
        "kind": "document:85208-7",
        "kind_label": "Compte rendu de télémédecine",
        "state": "sent",
        "state_label": "Envoyé",
        "attempts": 1,
        "max_attempts": 8,
        "next_attempt_at": None,
        "last_error": None,
        "receipt": None,
        "created_at": refused["created_at"],
        "sent_at": None,
        "delivery_id": refused["delivery_id"],
        "acknowledgement": "Refusé par le destinataire (902 : patient inconnu)",
    }
    assert refused["delivery_id"] is not None
    assert HEALTH_MARKER not in response.get_data(as_text=True)


def test_filters_by_state_and_channel_and_pages(api_as, admin, outbox_world):
    client = api_as(admin)
    dead = client.get("/api/v1/outbox?state=dead").get_json()
    assert [item["id"] for item in dead["items"]] == [outbox_world["dead"].id]
    assert dead["items"][0]["state_label"] == "En échec définitif"
    mssante = client.get("/api/v1/outbox?channel=mssante").get_json()
    assert {item["id"] for item in mssante["items"]} == {outbox_world["acknowledged"].id, outbox_world["refused"].id}
    assert {item["acknowledgement"] for item in mssante["items"]} == {
        "Acquitté",
        "Refusé par le destinataire (902 : patient inconnu)",
    }
    second = client.get("/api/v1/outbox?per_page=2&page=2").get_json()
    assert (second["total"], len(second["items"])) == (5, 2)
    # The total rides on the page's rows: a page past the end, with none, still has it (counted on its own).
    past = client.get("/api/v1/outbox?per_page=2&page=4").get_json()
    assert (past["total"], past["items"]) == (5, [])
    assert client.get("/api/v1/outbox?state=dead&per_page=1&page=2").get_json()["total"] == 1
    empty = client.get("/api/v1/outbox?channel=sms").get_json()
    assert empty == {"items": [], "page": 1, "per_page": 50, "total": 0}


def test_bad_filters_are_problems(api_as, coordinator, outbox_world):
    client = api_as(coordinator)
    body = assert_problem(client.get("/api/v1/outbox?state=perdu"), 422)
    assert "state" in body["errors"]
    assert_problem(client.get("/api/v1/outbox?page=0"), 400)
    assert "expediteur" in assert_problem(client.get("/api/v1/outbox?expediteur=x"), 422)["errors"]


def test_read_one_and_another_cpts_message_is_not_found(api_as, coordinator, outbox_world):
    client = api_as(coordinator)
    pending = client.get(f"/api/v1/outbox/{outbox_world['pending'].id}").get_json()
    assert (pending["state_label"], pending["attempts"], pending["next_attempt_at"] is not None) == (
        "Envoi en attente",
        2,
        True,
    )
    assert pending["delivery_id"] is None and pending["acknowledgement"] is None
    assert_problem(client.get(f"/api/v1/outbox/{outbox_world['elsewhere'].id}"), 404)


def test_requeue_a_dead_message(api_as, db_session, coordinator, outbox_world):
    dead = outbox_world["dead"]
    response = api_as(coordinator).post(f"/api/v1/outbox/{dead.id}/requeue")

    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["state"], response.get_json()["attempts"]) == ("pending", 0)
    db_session.expire_all()
    assert db_session.get(OutboxMessage, dead.id).state is OutboxState.PENDING
    event = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "outbox.requeue")).all()[-1]
    assert (event.actor_user_id, event.target_id) == (coordinator.id, str(dead.id))


def test_requeue_refusals_are_problems(api_as, db_session, coordinator, outbox_world):
    client = api_as(coordinator)
    body = assert_problem(client.post(f"/api/v1/outbox/{outbox_world['pending'].id}/requeue"), 409)
    assert body["detail"] == "Seul un message en échec définitif peut être renvoyé."
    outbox_world["elsewhere"].state = OutboxState.DEAD
    db_session.commit()
    assert_problem(client.post(f"/api/v1/outbox/{outbox_world['elsewhere'].id}/requeue"), 404)
    dead = outbox_world["dead"].id
    assert (
        "state" in assert_problem(client.post(f"/api/v1/outbox/{dead}/requeue", json={"state": "sent"}), 422)["errors"]
    )
    db_session.expire_all()
    assert db_session.get(OutboxMessage, dead).state is OutboxState.DEAD


def test_the_list_costs_the_same_queries_whatever_its_size(api_as, engine, db_session, cpts, coordinator):
    client = api_as(coordinator)
    fill(db_session, cpts, 3)
    client.get("/api/v1/outbox")  # the token's first use is recorded once
    with count_queries(engine) as small:
        assert client.get("/api/v1/outbox?per_page=200").status_code == 200
    fill(db_session, cpts, 60)
    with count_queries(engine) as large:
        body = client.get("/api/v1/outbox?per_page=200").get_json()
    assert body["total"] == 63 and len(body["items"]) == 63
    assert len(large) == len(small)


def test_messages_without_a_cpts_are_nobodys(api_as, db_session, coordinator, cpts):
    orphan = message(db_session, cpts)
    orphan.cpts_id = None
    message(db_session, factories.cpts(db_session))
    db_session.commit()
    assert api_as(coordinator).get("/api/v1/outbox").get_json()["total"] == 0


def test_the_list_is_a_light_read_of_two_statements(app, committed):
    """The token's caller (one Core SELECT), the page with its deliveries and the count; none inside a transaction,
    no lazy load, no audit row (P7). It was four on SQLite (BEGIN IMMEDIATE first), three on PostgreSQL inside a
    transaction, the account's ORM rows loaded; then three, the count on its own."""
    factory, created = committed
    with factory() as session:
        cpts = factories.cpts(session)
        created.append(cpts.id)
        coordinator = factories.coordinator(session, cpts)
        for _ in range(3):
            factories.outbox_message(session, cpts)
        _token, raw = accounts.create_api_token(session, coordinator, name="envois")
        session.commit()
    client, headers = app.test_client(), {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/outbox", headers=headers).status_code == 200  # the token's first use is stamped
    seen, response = light_statements(app, client, "/api/v1/outbox?per_page=20", headers)
    assert response.status_code == 200 and response.get_json()["total"] == 3
    assert len(seen) == 2 and all(statement.startswith("SELECT") for statement, _ in seen), seen
    assert all(outside for _, outside in seen), seen


def test_the_json_is_outbox_message_out_s_dump(db_session, cpts, outbox_world):
    """Every state, a document acknowledged or refused, a pending message's next attempt, a patient's address shown
    or hidden: outbox_message_json gives what OutboxMessageOut dumped of the line's values."""
    payload = '{"recipient_kind": "patient"}'
    factories.outbox_message(db_session, cpts, recipient="patient@example.org", payload=payload)
    db_session.commit()
    lines, _total = outbox_messages.list_messages(db_session, cpts.id)
    assert {line.message.state for line in lines} == set(OutboxState)
    assert any(line.is_to_patient for line in lines) and any(line.delivery is not None for line in lines)
    for line in lines:
        for may_see_patients in (True, False):
            message = line.message
            values = {
                **{name: getattr(message, name) for name in ("id", "channel", "kind", "state", "attempts")},
                **{name: getattr(message, name) for name in ("max_attempts", "last_error", "receipt")},
                "created_at": message.created_at,
                "sent_at": message.sent_at,
                "recipient": line.shown_recipient(may_see_patients),
                "kind_label": line.kind_label,
                "state_label": line.state_label,
                "next_attempt_at": message.next_attempt_at if message.state is OutboxState.PENDING else None,
                "delivery_id": line.delivery.id if line.delivery is not None else None,
                "acknowledgement": line.acknowledgement,
            }
            assert outbox_message_json(line, may_see_patients) == OutboxMessageOut().dump(values)


def test_a_listed_line_says_what_the_messages_entities_say(db_session, cpts, outbox_world):
    """The list reads columns (MessageRow, DeliveryRow), one message its entities (get_message): over every state,
    a document acknowledged, refused, sent and waiting for its acknowledgement or silent past the delay, a document
    to the patient's own mailbox, a patient's address by the payload, filtered by state and channel, the JSON and
    the page's values are the same."""
    from hub.models import (
        AWAITING_ACKNOWLEDGEMENT_LABEL,
        NO_ACKNOWLEDGEMENT_AFTER,
        Delivery,
        DeliveryState,
        RecipientRole,
    )
    from tests.web.test_outbox_pages import document_message
    from tests.web.test_outbox_pages import report as draft_report

    document = draft_report(db_session, cpts)
    for sent_ago in (dt.timedelta(hours=1), NO_ACKNOWLEDGEMENT_AFTER * 2):
        row = document_message(db_session, cpts, document, delivery_state=DeliveryState.SENT)
        delivery = db_session.scalar(select(Delivery).where(Delivery.outbox_message_id == row.id))
        delivery.sent_at = utcnow() - sent_ago
    patient_document = document_message(db_session, cpts, document, delivery_state=DeliveryState.QUEUED)
    db_session.scalar(
        select(Delivery).where(Delivery.outbox_message_id == patient_document.id)
    ).recipient_role = RecipientRole.PATIENT
    factories.outbox_message(db_session, cpts, recipient="patient@example.org", payload='{"recipient_kind": "patient"}')
    db_session.commit()

    seen = set()
    for state, channel in ((None, None), (OutboxState.SENT, None), (None, "mssante"), (OutboxState.SENT, "mssante")):
        _lines, total = outbox_messages.list_messages(db_session, cpts.id, state=state, channel=channel, per_page=4)
        assert total == len(outbox_messages.list_messages(db_session, cpts.id, state=state, channel=channel)[0])
        for page in range(1, total // 4 + 2):
            listed, _total = outbox_messages.list_messages(
                db_session, cpts.id, state=state, channel=channel, page=page, per_page=4
            )
            for line in listed:
                one = outbox_messages.get_message(db_session, cpts.id, line.message.id)
                for may_see_patients in (True, False):
                    assert outbox_message_json(line, may_see_patients) == outbox_message_json(one, may_see_patients)
                assert (line.is_to_patient, line.can_requeue, line.channel_label) == (
                    one.is_to_patient,
                    one.can_requeue,
                    one.channel_label,
                )
                seen.add(line.acknowledgement)
                seen.add(("patient", line.is_to_patient))
    assert {
        "Acquitté",
        "Sans accusé",
        AWAITING_ACKNOWLEDGEMENT_LABEL,
        None,
        ("patient", True),
        ("patient", False),
    } <= seen
