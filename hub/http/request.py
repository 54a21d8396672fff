"""The request's unit of work: one database session, committed once at the end when the request succeeded."""

from pathlib import Path

from flask import current_app, g


def db():
    """The request's database session (opened on first use, closed at the end of the request)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["hub.sessions"]()
    return g.db_session


def upload_dir() -> Path:
    """Where uploads and the hub's frozen documents are stored, outside the web root (I3)."""
    return Path(current_app.config["HUB"].get("UPLOAD_DIR") or Path(current_app.instance_path) / "uploads")


def keep_changes_on_error() -> None:
    """Commit even though the response is an error: a failed login must leave its trace and its count."""
    g.keep_changes = True


def finish_request(response):
    session = g.pop("db_session", None)
    if session is None:
        return response
    try:
        if response.status_code < 400 or g.pop("keep_changes", False):
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()
    return response


def discard_request_session(_exc=None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()
