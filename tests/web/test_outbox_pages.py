"""The coordination's "Envois": every message of its CPTS with its state in French, attempts, next attempt,
last error and, for a document, the receiver's acknowledgement; a filter by state, pages, and "Renvoyer"
on dead messages. Only addresses, kinds and ids are shown; the page costs the same queries at any size."""

import datetime as dt
import html
import uuid

import pytest
from sqlalchemy import select

from hub.db import utcnow
from hub.models import (
    AuditEvent,
    Delivery,
    DeliveryState,
    OutboxMessage,
    OutboxState,
    Profession,
    RecipientRole,
)
from tests import factories
from tests.queries import count_queries

HEALTH_MARKER = "Insuffisance cardiaque stade III"


def message(session, cpts, *, state=OutboxState.PENDING, channel="email", recipient=None, attempts=0, **extra):
    row = OutboxMessage(
        channel=channel,
        recipient=recipient or f"pro{uuid.uuid4().hex[:6]}@example.org",
        kind=extra.pop("kind", "reminder"),
        payload=extra.pop("payload", f'{{"note": "{HEALTH_MARKER}"}}'),
        idempotency_key=f"page:{uuid.uuid4().hex}",
        cpts_id=cpts.id,
        state=state,
        attempts=attempts,
        **extra,
    )
    session.add(row)
    session.flush()
    return row


def report(session, cpts):
    """A draft report of a new specialist about a new patient."""
    author = factories.clinician(session, cpts, Profession.SPECIALIST)
    return factories.report(session, factories.patient(session, cpts), author=author.professional, created_by=author)


def document_message(session, cpts, report_row, *, delivery_state, refusal_code=None, **extra):
    """An MSSanté message carrying a report, with its Delivery in the given state."""
    row = message(
        session, cpts, channel="mssante", kind="document:85208-7", state=OutboxState.SENT, attempts=1, **extra
    )
    session.add(
        Delivery(
            cpts_id=cpts.id,
            report_id=report_row.id,
            recipient_role=RecipientRole.ATTENDING_GP,
            channel="mssante",
            address=row.recipient,
            outbox_message_id=row.id,
            message_id=f"<{uuid.uuid4().hex}@hub>",
            state=delivery_state,
            due_at=utcnow(),
            refusal_code=refusal_code,
        )
    )
    session.flush()
    return row


@pytest.fixture
def outbox_world(db_session, cpts):
    return build_outbox_world(db_session, cpts)


def build_outbox_world(db_session, cpts):
    """One message in each state, two acknowledged or refused documents, and another CPTS's message."""
    soon = utcnow() + dt.timedelta(minutes=12)
    rows = {
        "pending": message(
            db_session,
            cpts,
            attempts=2,
            next_attempt_at=soon,
            last_error="serveur SMTP injoignable (ConnectionRefusedError)",
        ),
        "sending": message(db_session, cpts, state=OutboxState.SENDING, attempts=1),
        "dead": message(
            db_session,
            cpts,
            state=OutboxState.DEAD,
            attempts=8,
            last_error="destinataire refusé par le serveur SMTP : 550",
        ),
    }
    document = report(db_session, cpts)
    rows["acknowledged"] = document_message(db_session, cpts, document, delivery_state=DeliveryState.ACKNOWLEDGED)
    rows["refused"] = document_message(
        db_session, cpts, document, delivery_state=DeliveryState.REFUSED, refusal_code="902"
    )
    rows["elsewhere"] = message(db_session, factories.cpts(db_session), recipient="ailleurs@example.org")
    db_session.commit()
    return rows


def page(auth, user, url="/envois"):
    auth.login(user)
    response = auth.client.get(url)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def test_the_coordinator_follows_every_message_of_the_cpts(auth, coordinator, outbox_world):
    text = page(auth, coordinator)

    for label in ("Envoi en attente", "En cours d'envoi", "Envoyé", "En échec définitif"):
        assert f"<td>{label}</td>" in text
    assert outbox_world["pending"].recipient in text and "2 / 8" in text
    assert "serveur SMTP injoignable (ConnectionRefusedError)" in text
    assert "<td>Acquitté</td>" in text
    assert "<td>Refusé par le destinataire (902 : patient inconnu)</td>" in text
    assert "ailleurs@example.org" not in text  # another CPTS's
    assert HEALTH_MARKER not in text  # never a payload
    # Renvoyer only on the dead message.
    assert text.count("Renvoyer<span") == 1
    assert f"/envois/{outbox_world['dead'].id}/requeue" in text


def test_the_next_attempt_is_a_french_date(auth, coordinator, outbox_world):
    text = page(auth, coordinator, "/envois?state=pending")
    assert " h " in text and any(
        day in text for day in ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
    )


def test_the_admin_sees_the_page_too(auth, admin, outbox_world):
    assert outbox_world["dead"].recipient in page(auth, admin)


@pytest.mark.parametrize(
    ("state", "shown", "hidden"),
    [("dead", "dead", "pending"), ("pending", "pending", "dead"), ("sent", "acknowledged", "sending")],
)
def test_filter_by_state(auth, coordinator, outbox_world, state, shown, hidden):
    text = page(auth, coordinator, f"/envois?state={state}")
    assert outbox_world[shown].recipient in text
    assert outbox_world[hidden].recipient not in text


def test_an_unknown_state_filter_shows_everything(auth, coordinator, outbox_world):
    text = page(auth, coordinator, "/envois?state=perdu")
    assert all(outbox_world[name].recipient in text for name in ("pending", "dead", "sending"))


def test_pages_of_the_list_keep_the_filter(auth, app, coordinator, db_session, cpts, monkeypatch):
    monkeypatch.setitem(app.config, "HUB", {**app.config["HUB"], "API_PAGE_SIZE": 5})
    rows = [message(db_session, cpts, state=OutboxState.DEAD) for _ in range(7)]
    message(db_session, cpts)
    db_session.commit()

    first = page(auth, coordinator, "/envois?state=dead")
    second = page(auth, coordinator, "/envois?state=dead&page=2")

    assert "Page 1 sur 2" in first and "page=2" in first and "state=dead" in first
    assert [row.recipient in second for row in rows] == [True, True] + [False] * 5  # newest first


def test_renvoyer_requeues_a_dead_message_with_an_audit_line(auth, db_session, coordinator, outbox_world):
    dead = outbox_world["dead"]
    auth.login(coordinator)

    response = auth.post(f"/envois/{dead.id}/requeue", data={"state": "dead"})

    assert response.status_code == 302 and response.headers["Location"].endswith("/envois?state=dead")
    db_session.expire_all()
    row = db_session.get(OutboxMessage, dead.id)
    assert (row.state, row.attempts) == (OutboxState.PENDING, 0)
    assert row.next_attempt_at <= utcnow()
    event = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "outbox.requeue")).all()[-1]
    assert (event.actor_user_id, event.target_id) == (coordinator.id, str(dead.id))
    assert "remis en file" in html.unescape(auth.client.get("/envois").get_data(as_text=True))


def test_renvoyer_refuses_a_message_that_is_not_dead(auth, db_session, coordinator, outbox_world):
    pending = outbox_world["pending"]
    auth.login(coordinator)
    response = auth.post(f"/envois/{pending.id}/requeue")
    assert response.status_code == 409
    assert "Seul un message en échec définitif peut être renvoyé." in html.unescape(response.get_data(as_text=True))
    db_session.expire_all()
    assert db_session.get(OutboxMessage, pending.id).attempts == 2


def test_renvoyer_needs_the_csrf_token_and_stays_within_the_cpts(auth, db_session, coordinator, outbox_world):
    auth.login(coordinator)
    dead, elsewhere = outbox_world["dead"], outbox_world["elsewhere"]
    elsewhere.state = OutboxState.DEAD
    db_session.commit()

    assert auth.client.post(f"/envois/{dead.id}/requeue", data={}).status_code in (400, 403)
    assert auth.post(f"/envois/{elsewhere.id}/requeue").status_code == 404
    db_session.expire_all()
    assert {db_session.get(OutboxMessage, m.id).state for m in (dead, elsewhere)} == {OutboxState.DEAD}


def fill(db_session, cpts, count):
    document = report(db_session, cpts)
    for n in range(count):
        if n % 2:
            document_message(db_session, cpts, document, delivery_state=DeliveryState.REFUSED, refusal_code="903")
        else:
            message(db_session, cpts, state=OutboxState.DEAD)
    db_session.commit()


def test_the_page_costs_the_same_queries_whatever_its_size(
    auth, app, engine, db_session, cpts, coordinator, monkeypatch
):
    monkeypatch.setitem(app.config, "HUB", {**app.config["HUB"], "API_PAGE_SIZE": 200})
    auth.login(coordinator)
    fill(db_session, cpts, 3)
    with count_queries(engine) as small:
        assert auth.client.get("/envois").status_code == 200
    fill(db_session, cpts, 60)
    with count_queries(engine) as large:
        response = auth.client.get("/envois")
    assert response.get_data(as_text=True).count("903 : INS absent") == 31
    assert len(large) == len(small), (len(small), len(large))


def test_the_admin_does_not_see_a_patients_address(auth, admin, coordinator, db_session, cpts, outbox_world):
    message(db_session, cpts, channel="sms", recipient="+33612345678", payload='{"recipient_kind": "patient"}')
    db_session.commit()
    text = page(auth, admin)
    assert "+33612345678" not in text and "Patient (adresse masquée)" in text
    assert outbox_world["dead"].recipient in text, "a professional's address stays visible"
    assert "+33612345678" in page(auth, coordinator), "the coordination sees the patients of its CPTS"
