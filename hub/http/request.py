"""The request's unit of work: one database session, opened on first use, committed in one place.

- A view that returns a response has done its work: `finish_request` commits it, whatever the status — a
  refused login keeps its failure count (401), a form shown again keeps the audit of that page's read.
- A view that raises has its work discarded: every error handler (hub.http.errors) calls `discard_changes`
  first; a refusal that must be traced is recorded after that, and committed by `finish_request` as well.
- A form refused by the domain is not an error page: hub.http.forms.attempt discards the refused change
  before the page is shown again, so that only that page's read remains to commit.
"""

from pathlib import Path

from flask import current_app, g

from hub import audit


def db():
    """The request's database session (opened on first use, closed at the end of the request)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["hub.sessions"]()
    return g.db_session


def upload_dir() -> Path:
    """Where uploads and the hub's frozen documents are stored, outside the web root (I3)."""
    return Path(current_app.config["HUB"].get("UPLOAD_DIR") or Path(current_app.instance_path) / "uploads")


def discard_changes() -> None:
    """Undo everything the request changed so far (a refusal, an error); the session stays usable."""
    session = g.get("db_session")
    if session is not None:
        session.rollback()
        audit.discard_pending(session)


def finish_request(response):
    """The request's one commit, after its response is made (registered with `after_request`)."""
    session = g.pop("db_session", None)
    if session is None:
        return response
    try:
        session.commit()
    finally:
        session.close()
    return response


def close_request_session(_exc=None) -> None:
    """When no response was finished (an error in an after-request step): nothing of the request stays."""
    session = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()


def init_unit_of_work(app) -> None:
    app.after_request(finish_request)
    app.teardown_request(close_request_session)
