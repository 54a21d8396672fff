"""The worker's backlog (issue 17 under overload): the messages due that no worker has taken yet and since when the
oldest waits, per CPTS and for the whole hub, in one statement on the in-flight rows' partial index; the « Envois en
retard » warning on « Envois » and the desks past HUB_OUTBOX_ALERT_MINUTES; `flask hub outbox status` for monitoring.
Sent and dead messages, messages waiting for their retry or for the earlier version of their group, and another
CPTS's messages do not count."""

import datetime as dt
import html
from types import MappingProxyType

import pytest
from sqlalchemy import event

from hub.db import utcnow
from hub.models import OutboxState
from hub.services import outbox_messages
from tests import factories
from tests.web.test_outbox_pages import message

LATE = dt.timedelta(minutes=40)  # past the default threshold of 15 min
FRESH = dt.timedelta(minutes=2)


def due(session, cpts, ago: dt.timedelta, **extra):
    return message(session, cpts, next_attempt_at=utcnow() - ago, **extra)


def on_time_noise(session, cpts):
    """Messages that are not the worker's backlog, however old: sent, dead, waiting for their retry, being sent under
    a live lease, and the later version of a group whose earlier one waits for its retry."""
    long_ago = utcnow() - dt.timedelta(hours=5)
    message(session, cpts, state=OutboxState.SENT, next_attempt_at=long_ago, sent_at=long_ago)
    message(session, cpts, state=OutboxState.DEAD, next_attempt_at=long_ago, attempts=8)
    message(session, cpts, next_attempt_at=utcnow() + dt.timedelta(minutes=20), attempts=3)
    message(
        session,
        cpts,
        state=OutboxState.SENDING,
        next_attempt_at=long_ago,
        lease_until=utcnow() + dt.timedelta(minutes=4),
    )
    message(session, cpts, next_attempt_at=utcnow() + dt.timedelta(minutes=30), attempts=2, group_key="report:1")
    message(session, cpts, next_attempt_at=long_ago, group_key="report:1")


def page(auth, user, url):
    auth.login(user)
    response = auth.client.get(url)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def test_the_backlog_counts_the_due_messages_no_worker_took(db_session, cpts):
    on_time_noise(db_session, cpts)
    oldest = due(db_session, cpts, LATE)
    due(db_session, cpts, FRESH)
    # Taken by a worker that died: due again since its lease ran out.
    abandoned_at = utcnow() - dt.timedelta(minutes=10)
    message(db_session, cpts, state=OutboxState.SENDING, lease_until=abandoned_at, next_attempt_at=utcnow() - LATE)
    elsewhere = factories.cpts(db_session)
    due(db_session, elsewhere, dt.timedelta(hours=2))
    db_session.commit()

    now = utcnow()
    mine = outbox_messages.backlog(db_session, cpts.id, now=now)
    assert mine.waiting == 3
    assert mine.oldest_due_at == oldest.next_attempt_at
    assert LATE <= mine.age < LATE + dt.timedelta(minutes=1)
    assert mine.is_late(dt.timedelta(minutes=15)) and not mine.is_late(dt.timedelta(hours=1))

    everyone = outbox_messages.backlog(db_session, None, now=now)
    assert everyone.waiting == 4
    assert dt.timedelta(hours=2) <= everyone.age < dt.timedelta(hours=2, minutes=1)


def test_an_empty_backlog_is_never_late(db_session, cpts):
    on_time_noise(db_session, cpts)
    db_session.commit()
    backlog = outbox_messages.backlog(db_session, cpts.id, now=utcnow())
    assert (backlog.waiting, backlog.oldest_due_at, backlog.age) == (0, None, dt.timedelta(0))
    assert not backlog.is_late(dt.timedelta(minutes=1))


def test_the_cpts_backlog_reads_the_in_flight_index(db_session, engine, cpts):
    """The backlog's statement, as sent, reaches the partial index: its condition repeats the index's own text, which
    a planner needs to prove that the index holds every row the query may read."""
    sent = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        outbox_messages.backlog(db_session, cpts.id, now=utcnow())
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    statement, parameters = next((sql, p) for sql, p in sent if "outbox_messages" in sql)
    connection = db_session.connection()
    if engine.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a few rows: the plan it would choose at scale
        plan = [row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)]
    else:
        plan = [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
    assert any("ix_outbox_messages_cpts_in_flight" in line for line in plan), plan


def test_the_outbox_page_warns_when_the_worker_is_behind(auth, db_session, coordinator, cpts):
    due(db_session, cpts, LATE)
    due(db_session, cpts, FRESH)
    db_session.commit()

    text_ = page(auth, coordinator, "/envois")

    assert "Envois en retard" in text_
    assert "2 messages attendent d'être envoyés" in text_
    assert "le plus ancien attend depuis 40 min, au-delà du seuil de 15 min" in text_
    assert "Les messages ne sont pas perdus" in text_ and "prévenez l'exploitant du hub" in text_


@pytest.mark.parametrize("elsewhere", [False, True])
def test_no_warning_for_fresh_messages_nor_another_cpts_late_ones(auth, db_session, coordinator, cpts, elsewhere):
    on_time_noise(db_session, cpts)
    due(db_session, cpts, FRESH)
    if elsewhere:
        due(db_session, factories.cpts(db_session), LATE)
    db_session.commit()

    assert "Envois en retard" not in page(auth, coordinator, "/envois")
    assert "Envois en retard" not in page(auth, coordinator, "/")


def test_the_threshold_is_the_configured_one(app, auth, db_session, coordinator, cpts, monkeypatch):
    due(db_session, cpts, LATE)
    db_session.commit()
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "OUTBOX_ALERT_MINUTES": 60}))
    assert "Envois en retard" not in page(auth, coordinator, "/envois")


def test_the_coordinator_s_and_the_admin_s_desks_warn_too(auth, db_session, coordinator, admin, cpts):
    due(db_session, cpts, LATE)
    db_session.commit()

    for user in (coordinator, admin):
        text_ = page(auth, user, "/")
        assert text_.count('id="envois-en-retard"') == 1
        assert "1 message attend d'être envoyé" in text_
        assert "/envois?state=pending" in text_
        auth.client.post("/logout")


def _cli(app, monkeypatch, *args, minutes=15):
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "OUTBOX_ALERT_MINUTES": minutes}))
    return app.test_cli_runner().invoke(args=["hub", "outbox", "status", *args])


def test_the_cli_exits_1_when_the_oldest_waits_past_the_threshold(app, db_session, cpts, monkeypatch):
    on_time_noise(db_session, cpts)
    due(db_session, cpts, FRESH)
    db_session.commit()
    fresh = _cli(app, monkeypatch)
    assert fresh.exit_code == 0, fresh.output
    assert "Envois à jour : 1 message(s) dû(s) en attente du worker (hub)" in fresh.output

    due(db_session, factories.cpts(db_session), LATE)
    db_session.commit()
    late = _cli(app, monkeypatch)
    assert late.exit_code == 1, late.output
    assert "Envois en retard : 2 message(s)" in late.output and "depuis 40 min" in late.output
    assert "ne sont pas perdus" in late.output
    # One CPTS's view leaves the other's late message out; a larger threshold is not exceeded.
    assert _cli(app, monkeypatch, "--cpts", str(cpts.id)).exit_code == 0
    assert _cli(app, monkeypatch, minutes=60).exit_code == 0


def test_the_cli_says_when_nothing_waits(app, db_session, cpts, monkeypatch):
    on_time_noise(db_session, cpts)
    db_session.commit()
    result = _cli(app, monkeypatch, "--cpts", str(cpts.id))
    assert result.exit_code == 0, result.output
    assert f"Envois à jour (CPTS {cpts.id}) : aucun message dû en attente du worker (seuil 15 min)." in result.output
