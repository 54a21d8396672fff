"""A professional's iCalendar feed: its revocable token, its events, and a cheap version for HTTP caching.

The token is the only credential of `/ical/<token>.ics` (calendar apps cannot log in): drawn from
`secrets`, shown once, stored as its SHA-256 digest. A professional has at most one active feed;
making a new one revokes the old. The feed shows the professional's appointments (as performer or
as accompanying professional) from 30 days ago to a year ahead, whole local days, cancelled ones
included so that calendar apps remove them; it carries no health data beyond the kind of act, the
place kind and, when the owner chose it, the patient's initials.

The events are turned into iCalendar by scheduling.ical (a layer above this one), so `FeedEvent`,
its input, is defined here.
"""

import datetime as dt
import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, String, and_, case, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from hub import audit
from hub.db import utcnow
from hub.errors import Forbidden
from hub.models import (
    APPOINTMENT_KIND_LABELS,
    PLACE_KIND_LABELS,
    Appointment,
    AppointmentState,
    CalendarFeed,
    Patient,
    Professional,
    User,
)

TOKEN_PREFIX = "hubcal_"  # noqa: S105 (a public prefix, not a secret)
DAYS_BEFORE = 30
DAYS_AFTER = 366  # a year ahead, whole days, leap years included
DASH = "\u2013"  # en dash between the kind of act and the initials


class EventStatus(StrEnum):
    """The VEVENT STATUS values (RFC 5545 §3.8.1.11)."""

    TENTATIVE = "TENTATIVE"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"


class FeedEvent(NamedTuple):
    """One event of a feed, as scheduling.ical renders it. A named tuple: a feed makes 2,000 of them cold, and a
    frozen dataclass costs twice as much to make."""

    uid: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    summary: str
    status: EventStatus
    sequence: int
    last_modified: dt.datetime  # also the DTSTAMP: without METHOD, the last revision of the event (§3.8.7.2)
    location: str | None = None


@dataclass(frozen=True)
class FeedVersion:
    etag: str
    last_modified: dt.datetime


# --- tokens ------------------------------------------------------------------------------------------------


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_feed(
    session: Session, actor: User, professional: Professional, *, show_patient_initials: bool = True
) -> tuple[CalendarFeed, str]:
    """A new feed for the actor's own professional record, and its token, which is never stored nor shown
    again. The professional's previous active feed, if any, is revoked."""
    _check_owner(actor, professional.id)
    for previous in session.scalars(_active_feeds(professional.id)):
        revoke_feed(session, actor, previous)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    feed = CalendarFeed(
        professional_id=professional.id, token_hash=_digest(raw), show_patient_initials=show_patient_initials
    )
    session.add(feed)
    session.flush()  # the audit line names the feed
    audit.record(
        session,
        actor=actor,
        action="calendar.feed_create",
        target=feed,
        details={"patient_initials": show_patient_initials},
    )
    return feed, raw


def revoke_feed(session: Session, actor: User, feed: CalendarFeed) -> None:
    """The feed's URL stops working at once (404). Revoking a revoked feed changes nothing."""
    _check_owner(actor, feed.professional_id)
    if feed.revoked_at is None:
        feed.revoked_at = utcnow()
        audit.record(session, actor=actor, action="calendar.feed_revoke", target=feed)


def active_feed(session: Session, professional_id: int) -> CalendarFeed | None:
    return session.scalars(_active_feeds(professional_id).order_by(CalendarFeed.id.desc())).first()


def feed_for_token(session: Session, raw: str) -> CalendarFeed | None:
    """The active feed of this token, when its professional is active and has an active account; else None.

    One query; the professional is loaded with it (`session.get(Professional, feed.professional_id)` then
    costs nothing)."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    row = session.execute(
        select(CalendarFeed, Professional)
        .join(Professional, Professional.id == CalendarFeed.professional_id)
        .join(User, User.professional_id == Professional.id)
        .where(
            CalendarFeed.token_hash == _digest(raw),
            CalendarFeed.revoked_at.is_(None),
            Professional.is_active.is_(True),
            User.is_active.is_(True),
        )
    ).first()
    return row[0] if row else None


def record_fetch(session: Session, feed: CalendarFeed, *, cpts_id: int, events: int) -> None:
    """A feed served in full is a read of the professional's schedule, and of patient initials when shown:
    one audit line. A 304 discloses nothing and writes none."""
    audit.record(
        session,
        actor=f"calendar-feed:{feed.id}",
        action="calendar.fetch",
        target=feed,
        cpts_id=cpts_id,
        details={"events": events, "patient_initials": feed.show_patient_initials},
    )


def _active_feeds(professional_id: int):
    return select(CalendarFeed).where(
        CalendarFeed.professional_id == professional_id, CalendarFeed.revoked_at.is_(None)
    )


def _check_owner(actor: User, professional_id: int) -> None:
    if actor.professional_id is None or actor.professional_id != professional_id:
        raise Forbidden("Seul le professionnel concerné gère le lien de son agenda.")


# --- events ------------------------------------------------------------------------------------------------


def feed_window(*, zone: str, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC: from local midnight 30 days ago to local midnight a year ahead. Whole days,
    so that the feed (and its ETag) changes once a day, not at every request."""
    return _midnight(zone, now, -DAYS_BEFORE), _midnight(zone, now, DAYS_AFTER)


def _midnight(zone: str, now: dt.datetime | None, days: int) -> dt.datetime:
    """Local midnight `days` from today, in UTC."""
    tz = ZoneInfo(zone)
    day = (now or utcnow()).astimezone(tz).date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


def _in_feed(professional_id: int, window: tuple[dt.datetime, dt.datetime]):
    return (
        or_(Appointment.performer_id == professional_id, Appointment.accompanying_id == professional_id),
        Appointment.starts_at >= window[0],
        Appointment.starts_at < window[1],
    )


def _version_columns(show_patient_initials: bool) -> tuple:
    """What tells one state of a feed event from another: the appointment's id, its latest change and SEQUENCE,
    and its patient's latest change when the initials are shown. Every writer of the hub raises `updated_at`
    (the column's onupdate, in ORM and Core statements alike); the feed's ETag relies on it too."""
    columns = (Appointment.id, _raw(Appointment.updated_at), Appointment.sequence)
    return columns + ((_raw(Patient.updated_at),) if show_patient_initials else ())


def _event_columns(professional_id: int) -> tuple:
    """The columns an event is made of, after its version's; the times are the professional's own, chosen in
    SQL: the performer's slot, or for the accompanying professional the accompaniment window (the slot when
    it has none)."""
    as_performer = Appointment.performer_id == professional_id
    own_window = and_(~as_performer, Appointment.accompaniment_starts_at.is_not(None))
    own_window = and_(own_window, Appointment.accompaniment_ends_at.is_not(None))
    starts_at = case((own_window, Appointment.accompaniment_starts_at), else_=Appointment.starts_at)
    ends_at = case((own_window, Appointment.accompaniment_ends_at), else_=Appointment.ends_at)
    return (
        _raw(Appointment.kind),
        _raw(Appointment.state),
        _raw(Appointment.place_kind),
        as_performer,
        _raw(starts_at),
        _raw(ends_at),
    )


def _raw(column: Any) -> ColumnElement[Any]:
    """The column without its type's result processing (a feed reads thousands): enums as their stored values,
    times as SQLite's naive UTC text or psycopg's aware datetime."""
    return type_coerce(column, String)


# The four name columns that Patient.initials reads, when the initials are shown.
_NAME_COLUMNS = (Patient.birth_name, Patient.first_birth_given_name, Patient.used_last_name, Patient.used_first_name)


class _Names(NamedTuple):
    """What Patient.initials reads, on a row that is not a Patient."""

    birth_name: str | None
    first_birth_given_name: str | None
    used_last_name: str | None
    used_first_name: str | None


def feed_versions(
    session: Session,
    professional_id: int,
    *,
    show_patient_initials: bool = True,
    zone: str,
    now: dt.datetime | None = None,
) -> list[tuple]:
    """The versions (`_version_columns`) of the feed's events in start order, in one light query: what a
    process compares with the renderings it keeps."""
    columns = _version_columns(show_patient_initials)
    return _fetch(session, professional_id, columns, show_patient_initials, feed_window(zone=zone, now=now))


def versioned_events(
    session: Session,
    professional_id: int,
    ids: Collection[int] | None,
    *,
    show_patient_initials: bool = True,
    uid_domain: str,
    zone: str,
    now: dt.datetime | None = None,
) -> list[tuple[tuple, FeedEvent]]:
    """(version, event) of the feed's events in start order, all of them or those of `ids`, in one query. The
    patient's names are not even read when the initials are off."""
    columns = _version_columns(show_patient_initials) + _event_columns(professional_id)
    columns += _NAME_COLUMNS if show_patient_initials else ()
    rows = _fetch(session, professional_id, columns, show_patient_initials, feed_window(zone=zone, now=now), ids)
    cut = 4 if show_patient_initials else 3
    return [(row[:cut], _event(row[0], row[1:3], row[cut:], uid_domain)) for row in rows]


def feed_events(
    session: Session,
    professional_id: int,
    *,
    show_patient_initials: bool = True,
    uid_domain: str,
    zone: str,
    now: dt.datetime | None = None,
) -> list[FeedEvent]:
    """The feed's events in start order, in one query."""
    pairs = versioned_events(
        session,
        professional_id,
        None,
        show_patient_initials=show_patient_initials,
        uid_domain=uid_domain,
        zone=zone,
        now=now,
    )
    return [event for _version, event in pairs]


def _fetch(session, professional_id, columns, join_patient, window, ids: Collection[int] | None = None) -> list:
    query = select(*columns).where(*_in_feed(professional_id, window))
    if ids is not None:
        query = query.where(Appointment.id.in_(ids))
    if join_patient:
        query = query.join(Patient, Patient.id == Appointment.patient_id)
    session.flush()  # what the ORM's autoflush would do: the Core connection below skips the ORM's row handling
    result = session.connection().execute(query.order_by(Appointment.starts_at, Appointment.id))
    # The driver's own tuples: the columns have no result processing to apply, and a tuple hashes (as a key of the
    # render cache) several times faster than a Row.
    with result:
        return result.cursor.fetchall()


def _event(appointment_id: int, change: tuple, body: tuple, uid_domain: str) -> FeedEvent:
    """The event of a row: its (updated_at, sequence), then `_event_columns` and the patient's names if shown."""
    updated_at, sequence = change
    kind, state, place_kind, as_performer, starts_at, ends_at, *names = body
    summary = _KIND_LABELS[kind]
    if names:
        # One rule for the initials, the model's, read on a value that has the name columns it reads.
        summary = f"{summary} {DASH} {Patient.initials.fget(_Names(*names))}"  # type: ignore[attr-defined]  # mypy: getter
    return FeedEvent(
        f"appointment-{appointment_id}@{uid_domain}",
        _instant(starts_at),
        _instant(ends_at),
        summary,
        _STATUSES[state, bool(as_performer)],
        sequence,
        _instant(updated_at),
        _PLACE_LABELS[place_kind],
    )


def _instant(value: str | dt.datetime) -> dt.datetime:
    """An aware UTC datetime from a raw time column (what UTCDateTime would have made of it)."""
    if isinstance(value, str):  # SQLite: naive UTC text
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def event_status(state: AppointmentState, *, as_performer: bool) -> EventStatus:
    """Proposed is tentative; cancelled (or postponed: the performer was absent) is cancelled (kept, so that
    calendars remove it). A declined visit is cancelled for an IDEL still named on it, and tentative for the
    performer, who waits for another."""
    if state is AppointmentState.PROPOSED:
        return EventStatus.TENTATIVE
    if state in (AppointmentState.CANCELLED, AppointmentState.POSTPONED):
        return EventStatus.CANCELLED
    if state is AppointmentState.DECLINED:
        return EventStatus.TENTATIVE if as_performer else EventStatus.CANCELLED
    return EventStatus.CONFIRMED


# By stored value: a row's raw columns look these up without making enum members.
_KIND_LABELS = {kind.value: label for kind, label in APPOINTMENT_KIND_LABELS.items()}
_PLACE_LABELS = {place.value: label for place, label in PLACE_KIND_LABELS.items()}
_STATUSES = {
    (state.value, as_performer): event_status(state, as_performer=as_performer)
    for state in AppointmentState
    for as_performer in (False, True)
}


def feed_version(
    session: Session, feed: CalendarFeed, *, zone: str, salt: str = "", now: dt.datetime | None = None
) -> FeedVersion:
    """ETag and Last-Modified of the feed, from one aggregate query and nothing built.

    The ETag covers the window's day, the feed's settings, the owner's name (the calendar's name) and,
    over the window's appointments, their count, latest change and summed SEQUENCE, plus the patients'
    latest change when initials are shown: an appointment added, changed, cancelled or moved in or out
    changes it. `salt` is for what the caller adds (the rendering's version). Last-Modified is the latest
    of those changes, the feed's creation and the window's last move (local midnight); an appointment
    moved away from the professional lowers the count without a later date, so If-None-Match is the
    reliable validator."""
    window = feed_window(zone=zone, now=now)
    columns: list[ColumnElement[Any]] = [
        func.count(Appointment.id),
        func.max(Appointment.updated_at),
        func.coalesce(func.sum(Appointment.sequence), 0),
    ]
    query = select(*columns).where(*_in_feed(feed.professional_id, window))
    if feed.show_patient_initials:
        query = query.add_columns(func.max(Patient.updated_at)).join(Patient, Patient.id == Appointment.patient_id)
    count, latest, sequences, *patients = session.execute(query).one()
    professional = session.get_one(Professional, feed.professional_id)
    material = [feed.id, feed.show_patient_initials, professional.full_name, window[0], count, latest, sequences]
    material += [*patients, salt]
    etag = hashlib.sha256("|".join(map(str, material)).encode()).hexdigest()[:32]
    changes = [feed.created_at, _midnight(zone, now, 0), latest, *patients]
    return FeedVersion(etag=etag, last_modified=max(c for c in changes if c is not None))
