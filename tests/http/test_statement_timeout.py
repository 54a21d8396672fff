"""A web node's database limits (HUB_STATEMENT_TIMEOUT_MS, HUB_LOCK_TIMEOUT_MS; deploy/gunicorn_conf.py): under
gthread nothing else bounds a request. A statement past them is cancelled by PostgreSQL and the request answers the
hub's 500, its transaction rolled back; without them (the default: workers, CLI, tests) nothing changes."""

import logging

import pytest
from sqlalchemy import select, text

from hub import audit, create_app
from hub.config import ConfigError, load_config
from hub.db import make_engine
from hub.http.access import PUBLIC, access
from hub.http.request import db
from hub.models import AuditEvent
from tests.conftest import test_config as base_config


def _postgresql(url: str) -> None:
    if not url.startswith("postgresql"):
        pytest.skip("statement_timeout and lock_timeout are PostgreSQL's")


def _settings(engine) -> tuple[str, str]:
    with engine.connect() as connection:
        return (
            connection.exec_driver_sql("SHOW statement_timeout").scalar_one(),
            connection.exec_driver_sql("SHOW lock_timeout").scalar_one(),
        )


def test_the_limits_are_off_by_default_and_never_negative(tmp_path):
    config = load_config(tmp_path, base_config("sqlite:///:memory:"))
    assert (config["STATEMENT_TIMEOUT_MS"], config["LOCK_TIMEOUT_MS"]) == (0, 0)
    with pytest.raises(ConfigError, match="HUB_LOCK_TIMEOUT_MS must be 0"):
        load_config(tmp_path, base_config("sqlite:///:memory:") | {"LOCK_TIMEOUT_MS": -1})
    # SQLite takes them and ignores them: its busy timeout already bounds the wait for its one lock.
    sqlite = make_engine("sqlite:///:memory:", statement_timeout_ms=300, lock_timeout_ms=200)
    with sqlite.connect() as connection:
        assert connection.exec_driver_sql("SELECT 1").scalar_one() == 1
    sqlite.dispose()


def test_the_engine_sets_them_on_every_connection_and_keeps_other_options(database_url):
    _postgresql(database_url)
    bounded = make_engine(
        database_url,
        statement_timeout_ms=1500,
        lock_timeout_ms=200,
        connect_args={"application_name": "hub-timeout-test"},
    )
    plain = make_engine(database_url)
    try:
        assert _settings(bounded) == ("1500ms", "200ms")
        with bounded.connect() as connection:
            assert connection.exec_driver_sql("SHOW application_name").scalar_one() == "hub-timeout-test"
        assert _settings(plain) == ("0", "0")
    finally:
        bounded.dispose()
        plain.dispose()


def test_the_application_engine_has_no_limit_unless_configured(app, engine, database_url):
    _postgresql(database_url)
    assert _settings(engine) == ("0", "0")


@pytest.fixture
def bounded_app(database_url):
    """A web node's app: statements cut at 300 ms, lock waits at 200 ms; /healthz and an API path serve `view`."""
    _postgresql(database_url)
    application = create_app(base_config(database_url) | {"STATEMENT_TIMEOUT_MS": 300, "LOCK_TIMEOUT_MS": 200})
    served = {}

    def view():
        return served["view"]()

    application.view_functions["home.health"] = access(PUBLIC)(view)
    application.add_url_rule("/api/v1/test-slow", "test_slow", access(PUBLIC)(view))
    yield application, served
    application.extensions["hub.engine"].dispose()


def _slow(action: str, statement: str):
    def view():
        audit.record(db(), actor=None, action=action)
        db().flush()
        db().execute(text(statement))
        return "fait"

    return view


def _rows(app, action: str) -> int:
    with app.extensions["hub.sessions"]() as session:
        return len(session.scalars(select(AuditEvent.id).where(AuditEvent.action == action)).all())


def test_a_statement_past_the_limit_answers_the_500_problem_and_rolls_back(bounded_app, caplog):
    app, served = bounded_app
    served["view"] = _slow("timeout.api_sleep", "SELECT pg_sleep(2)")
    with caplog.at_level(logging.ERROR, logger="hub.http.errors"):
        response = app.test_client().get("/api/v1/test-slow")
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["title"] == "Erreur interne"
    assert response.get_json()["detail"] == "Une erreur inattendue est survenue. Elle a été enregistrée ; réessayez."
    assert "sqlstate: 57014" in caplog.text  # query_canceled: the server's statement_timeout, not a client's
    assert _rows(app, "timeout.api_sleep") == 0, "the request's transaction is rolled back"

    # The pooled connection is usable again, and a statement within the limit runs.
    served["view"] = _slow("timeout.api_quick", "SELECT pg_sleep(0.01)")
    assert app.test_client().get("/api/v1/test-slow").status_code == 200
    assert _rows(app, "timeout.api_quick") == 1


def test_a_lock_waited_past_the_limit_answers_the_error_page_and_rolls_back(bounded_app, database_url, caplog):
    app, served = bounded_app
    served["view"] = _slow("timeout.page_lock", "SELECT pg_advisory_xact_lock(424242)")
    holder = make_engine(database_url)
    try:
        with holder.begin() as connection:  # another process holds the lock for the whole request
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(424242)")
            with caplog.at_level(logging.ERROR, logger="hub.http.errors"):
                response = app.test_client().get("/healthz")
    finally:
        holder.dispose()
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    assert "Une erreur inattendue est survenue" in response.get_data(as_text=True)
    assert "sqlstate: 55P03" in caplog.text  # lock_not_available: lock_timeout (200 ms), before statement_timeout
    assert _rows(app, "timeout.page_lock") == 0


def test_without_the_setting_a_slow_statement_still_completes(app, database_url):
    _postgresql(database_url)
    original = app.view_functions["home.health"]
    app.view_functions["home.health"] = access(PUBLIC)(_slow("timeout.unbounded", "SELECT pg_sleep(0.5)"))
    try:
        response = app.test_client().get("/healthz")
    finally:
        app.view_functions["home.health"] = original
    assert response.status_code == 200
    assert _rows(app, "timeout.unbounded") == 1
