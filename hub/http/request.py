"""The request cycle (`init_request_cycle`) and its unit of work: one database session, opened on first use,
committed in one place.

- A view that returns a response has done its work: `finish_request` commits it, whatever the status — a
  refused login keeps its failure count (401), a form shown again keeps the audit of that page's read.
- A view that raises has its work discarded (but for a `single_write` view's write, below): every error handler
  (hub.http.errors) calls `discard_changes` first; a refusal that must be traced is recorded after that, and
  committed by `finish_request` as well.
- A form refused by the domain is not an error page: hub.http.forms.attempt discards the refused change
  before the page is shown again, so that only that page's read remains to commit.
- An API view marked `light_read` (hub.http.access) only reads: its session runs without a transaction
  (hub.db.without_transaction), each SELECT on its own, and its audit rows are written only if it returns, in one
  INSERT: on PostgreSQL that INSERT, committed on its own, is the request's last statement (no session commit is
  left to run); on SQLite the rows of the light reads finishing together are committed together
  (hub.audit.GroupCommit). So does, on PostgreSQL, an API view marked `single_write`, whose one write is one
  statement carrying its audit row: that write is committed as it runs, so such a view's work is kept even if it
  raised afterwards (`discard_changes` has nothing left to undo): nothing may fail after its write.
"""

import contextlib
import os
import weakref
from collections.abc import Callable
from pathlib import Path

from flask import Flask, current_app, g, request
from sqlalchemy.orm import Session

from hub import audit
from hub.db import is_autocommitting, is_without_transaction, without_transaction
from hub.http.access import enforce_access, runs_without_transaction
from hub.http.headers import secure_headers
from hub.http.inputs import refuse_nul_bytes


def db() -> Session:
    """The request's database session (opened on first use, closed at the end of the request)."""
    request_globals = g._get_current_object()  # one context lookup per call, not two
    session = request_globals.get("db_session")
    if session is None:
        session = current_app.extensions["hub.sessions"]()
        if runs_without_transaction(session.get_bind().dialect.name):
            without_transaction(session)
        request_globals.db_session = session
    return session


def upload_dir() -> Path:
    """Where uploads and the hub's frozen documents are stored, outside the web root (I3)."""
    return Path(current_app.config["HUB"]["UPLOAD_DIR"])


def territory_zone() -> str:
    """The territory's time zone (HUB_TIMEZONE): the one source of the wall time of every page and call."""
    return current_app.config["HUB"]["TIMEZONE"]


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
    grouped = current_app.extensions["hub.audit_commits"]
    try:
        if session.new or session.dirty or session.deleted:
            session.commit()
        elif grouped is not None and is_without_transaction(session):
            # A light read: its one write is its audit rows, committed with those of the reads finishing with it.
            grouped.commit(session)
        elif grouped is None and is_autocommitting(session):
            # A light read on PostgreSQL: its statements were committed as they ran, its audit rows are by their
            # INSERT; the session's commit would only run its transaction machinery over nothing (~0.1 ms of CPU).
            audit.write_pending(session)
        else:
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


def open_request() -> None:
    request_id = g.request_id = new_request_id()
    audit.current_context.set(audit.AuditContext(request_id=request_id, ip=request.remote_addr))


def new_request_id() -> str:
    """A random (version 4) UUID's 32 hex digits, as `uuid.uuid4().hex` gives them, without building a UUID
    object and checking its fields: 2 µs instead of 11."""
    random = bytearray(os.urandom(16))
    random[6] = random[6] & 0x0F | 0x40  # the version, 4
    random[8] = random[8] & 0x3F | 0x80  # the variant, RFC 4122
    return random.hex()


def _coroutine_checked_once(app: Flask) -> None:
    """Flask asks whether each hook, view and error handler is a coroutine function before every call of it
    (inspect's code flags, 9 times a request); the hub's are plain functions, known so after the first ask.
    A coroutine function is still wrapped by Flask at each call."""
    ensure_sync = app.ensure_sync
    # Weak: a callable made per request (a closure given to after_this_request, a partial) leaves with it.
    plain: weakref.WeakSet[Callable] = weakref.WeakSet()

    def ensure_sync_once(func: Callable) -> Callable:
        # A bound method is asked about through its function: the key does not grow with each bound object.
        key = getattr(func, "__func__", func)
        if key in plain:  # a WeakSet answers False for what it cannot reference
            return func
        synchronous = ensure_sync(func)
        if synchronous is func:
            with contextlib.suppress(TypeError):  # not weakly referenced: asked each time, as Flask does
                plain.add(key)
        return synchronous

    app.ensure_sync = ensure_sync_once  # type: ignore[method-assign]


def init_request_cycle(app: Flask) -> None:
    """Every request: an id for the audit, no NUL byte (I2), the access rule, the view, then (after-request
    steps run last registered first) its one commit, then the security headers."""
    app.before_request(open_request)
    app.before_request(refuse_nul_bytes)
    app.before_request(enforce_access)
    app.after_request(secure_headers)
    app.after_request(finish_request)
    app.teardown_request(close_request_session)
    _coroutine_checked_once(app)
