"""The worker's backlog (issue 17 under overload): the messages due that no worker has taken yet and since when the
oldest waits, per CPTS and for the whole hub, in one statement on the in-flight rows' partial index; the « Envois en
retard » warning on « Envois » and the desks past HUB_OUTBOX_ALERT_MINUTES; `flask hub outbox status` for monitoring.
Sent and dead messages, messages waiting for their retry or for the earlier version of their group, and another
CPTS's messages do not count."""

import datetime as dt
import html
import os
from types import MappingProxyType

import pytest
from flask import render_template_string
from sqlalchemy import event, func, select

from hub import create_app
from hub.db import utcnow
from hub.models import Appointment, OutboxMessage, OutboxState, Role
from hub.models.outbox import IN_FLIGHT_SQL
from hub.services import outbox_messages
from tests import factories
from tests.conftest import test_config as app_config
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


def test_the_in_flight_term_names_the_outbox_s_state(db_session, cpts):
    """The backlog's condition stays the outbox's own in a statement that also reads another table with a `state`
    (appointments, visit_offers): unqualified, it would be ambiguous there."""
    due(db_session, cpts, LATE)
    db_session.commit()
    joined = (
        select(func.count(OutboxMessage.id))
        .select_from(OutboxMessage)
        .outerjoin(Appointment, Appointment.cpts_id == OutboxMessage.cpts_id)
        .where(OutboxMessage.cpts_id == cpts.id, IN_FLIGHT_SQL)
    )
    assert db_session.scalar(joined) == 1


def test_the_outbox_page_warns_when_the_worker_is_behind(auth, db_session, coordinator, cpts):
    due(db_session, cpts, LATE)
    due(db_session, cpts, FRESH)
    db_session.commit()

    text_ = page(auth, coordinator, "/envois")

    assert "Envois en retard" in text_
    assert (
        "2 messages (e-mails, SMS, comptes rendus ou dépôts DMP) attendent d'être envoyés ; "
        "le plus ancien attend depuis 40 min, au-delà du seuil de 15 min." in text_
    )
    # A section named by its heading, not a live region whose content, there at load, is never announced.
    assert (
        '<section class="alert alert-warning" id="envois-en-retard" aria-labelledby="envois-en-retard-titre">' in text_
    )
    assert 'id="envois-en-retard-titre">Envois en retard</h2>' in text_ and 'role="status"' not in text_
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
        assert "1 message (e-mail, SMS, compte rendu ou dépôt DMP) attend d'être envoyé depuis 40 min, au-delà" in text_
        assert "/envois?state=pending" in text_
        auth.client.post("/logout")


def test_a_coordinator_who_is_also_the_admin_sees_one_warning_read_once(auth, engine, db_session, cpts):
    """Both parts of the desk carry the backlog; it is read once (the coordinator's counts statement) and shown once
    (above the coordination's part)."""
    both = factories.user(db_session, cpts, Role.COORDINATOR, Role.ADMIN)
    due(db_session, cpts, LATE)
    db_session.commit()
    sent = []

    def keep(_conn, _cursor, statement, *_args):
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", keep)
    try:
        text_ = page(auth, both, "/")
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert "Administration de la CPTS" in text_ and "Aujourd'hui pour la coordination" in text_
    assert text_.count('id="envois-en-retard"') == 1
    assert sum(str(IN_FLIGHT_SQL) in statement for statement in sent) == 1


def test_counts_read_the_french_way(app, monkeypatch):
    """`1 234 messages`, `1 440 min`: a narrow no-break space between thousands."""
    now = utcnow()
    backlog = outbox_messages.Backlog(1234, now - dt.timedelta(days=2), now)
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "OUTBOX_ALERT_MINUTES": 1440}))
    with app.test_request_context():
        text_ = render_template_string(
            '{% from "outbox/_backlog.html" import backlog_alert %}{{ backlog_alert(backlog) }}', backlog=backlog
        )
    assert "1\u202f234 messages (e-mails" in text_ and "au-delà du seuil de 1\u202f440 min." in text_


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
    # Nagios shows the plugin's stdout: the warning is there, in one line.
    assert late.stdout == late.output and late.stdout.count("\n") == 1
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


def test_the_cli_knows_only_the_cpts_it_is_asked_about(app, db_session, cpts, monkeypatch):
    """A typo or a deleted CPTS is UNKNOWN (3), not « à jour » for ever; so is an organisation that is not a CPTS."""
    practice = factories.organisation(db_session, cpts)
    db_session.commit()
    for cpts_id in (cpts.id + 10_000, practice.id):
        result = _cli(app, monkeypatch, "--cpts", str(cpts_id))
        assert result.exit_code == 3, result.output
        assert (
            result.stdout
            == f"Envois : état inconnu, la CPTS {cpts_id} n'existe pas (`--cpts` attend l'id d'une CPTS).\n"
        )


def test_the_cli_is_unknown_when_the_database_does_not_answer(tmp_path):
    """Exit 3 (UNKNOWN) and one line, not a traceback's exit 1, which a monitoring would read as a late worker."""
    unreachable = (
        "postgresql+psycopg://postgres@127.0.0.1:1/hub"
        if os.environ.get("TEST_DATABASE_URL")
        else f"sqlite:///{tmp_path}/missing/hub.sqlite3"
    )
    app = create_app(app_config(unreachable))
    try:
        result = app.test_cli_runner().invoke(args=["hub", "outbox", "status"])
    finally:
        app.extensions["hub.engine"].dispose()
    assert result.exit_code == 3, result.output
    assert result.stdout.startswith("Envois : état inconnu (hub), la base de données ne répond pas : OperationalError")
    assert result.stdout.count("\n") == 1
