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
import functools
import hashlib
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Integer, Select, String, and_, bindparam, case, func, or_, select, type_coerce
from sqlalchemy.orm import InstrumentedAttribute, Session

from hub import audit
from hub.db import UTCDateTime, driver_rows, utcnow
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


class ServedFeed(NamedTuple):
    """What a GET of a feed needs of its subscription, owner and current version, read in one statement."""

    id: int
    professional_id: int
    show_patient_initials: bool
    cpts_id: int
    calendar_name: str  # the owner's name, part of the ETag
    version: FeedVersion


def feed_for_token(
    session: Session, raw: str, *, zone: str, salt: str = "", now: dt.datetime | None = None
) -> ServedFeed | None:
    """The active feed of this token, when its professional is active and has an active account, with its
    version (ETag and Last-Modified, nothing built); else None.

    One statement: the token lookup and the aggregate of the window's appointments that makes the version. The
    version covers the window's day, the feed's settings, the owner's name and, over the window's appointments,
    their count, latest change and summed SEQUENCE, plus the patients' latest change when initials are shown: an
    appointment added, changed, cancelled or moved in or out changes it. `salt` is for what the caller adds (the
    rendering's version). Last-Modified is the latest of those changes, the feed's creation and the window's last
    move (local midnight); an appointment moved away from the professional lowers the count without a later
    date, so If-None-Match is the reliable validator."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    window = feed_window(zone=zone, now=now)
    parameters = {"token_hash": _digest(raw), "window_start": window[0], "window_end": window[1]}
    rows = driver_rows(session, _served_feed_statement(), parameters)
    if not rows:
        return None
    feed_id, professional_id, initials, created_at, cpts_id, first_name, last_name, *aggregate = rows[0]
    count, latest, sequences, patients = aggregate
    name = Professional.full_name.fget(_Owner(first_name, last_name))  # type: ignore[attr-defined]  # mypy: getter
    material = [feed_id, initials, name, window[0], count, latest, sequences]
    material += [*([patients] if initials else []), salt]
    etag = hashlib.sha256("|".join(map(str, material)).encode()).hexdigest()[:32]
    changes = [created_at, _midnight(zone, now, 0), latest, patients]
    version = FeedVersion(etag=etag, last_modified=max(c for c in changes if c is not None))
    return ServedFeed(feed_id, professional_id, initials, cpts_id, name, version)


@functools.cache
def _served_feed_statement() -> Select:
    """feed_for_token's statement, built once with the token and the window as parameters: building it (and its
    cache key) on every GET cost about as much CPU as running it. Run by the driver (hub.db.driver_rows): through
    the ORM's execution, its result handling cost more than the statement's round trip."""
    # An outer join and a GROUP BY on the one feed the unique token names: the appointments are reached through
    # the feed's professional, by index. The patients are joined whatever the setting (cheap next to a second
    # statement) and only counted when their initials are shown.
    shown = CalendarFeed.show_patient_initials.is_(True)
    return (
        select(
            CalendarFeed.id,
            CalendarFeed.professional_id,
            CalendarFeed.show_patient_initials,
            CalendarFeed.created_at,
            Professional.cpts_id,
            Professional.first_name,
            Professional.last_name,
            func.count(Appointment.id),
            func.max(Appointment.updated_at),
            func.coalesce(func.sum(Appointment.sequence), 0),
            func.max(case((shown, Patient.updated_at))),
        )
        .join(Professional, Professional.id == CalendarFeed.professional_id)
        .outerjoin(Appointment, and_(*_in_feed(CalendarFeed.professional_id, _WINDOW)))
        .outerjoin(Patient, Patient.id == Appointment.patient_id)
        .where(
            CalendarFeed.token_hash == bindparam("token_hash", type_=String),
            CalendarFeed.revoked_at.is_(None),
            Professional.is_active.is_(True),
            # EXISTS, not a join: two active accounts of one professional would count her appointments twice.
            select(User.id).where(User.professional_id == Professional.id, User.is_active.is_(True)).exists(),
        )
        .group_by(CalendarFeed.id, Professional.id)
    )


class _Owner(NamedTuple):
    """What Professional.full_name reads, on a row that is not a Professional."""

    first_name: str
    last_name: str


def record_fetch(session: Session, feed: ServedFeed, *, events: int) -> None:
    """A feed served in full is a read of the professional's schedule, and of patient initials when shown:
    one audit line. A 304 discloses nothing and writes none."""
    audit.record(
        session,
        actor=f"calendar-feed:{feed.id}",
        action="calendar.fetch",
        target=(CalendarFeed.__tablename__, feed.id),
        cpts_id=feed.cpts_id,
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

# The feed's window as parameters of the statements built once (`feed_window` gives their values).
_WINDOW = (bindparam("window_start", type_=UTCDateTime), bindparam("window_end", type_=UTCDateTime))


def feed_window(*, zone: str, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC: from local midnight 30 days ago to local midnight a year ahead. Whole days,
    so that the feed (and its ETag) changes once a day, not at every request."""
    return _midnight(zone, now, -DAYS_BEFORE), _midnight(zone, now, DAYS_AFTER)


def _midnight(zone: str, now: dt.datetime | None, days: int) -> dt.datetime:
    """Local midnight `days` from today, in UTC."""
    return _local_midnight(zone, (now or utcnow()).astimezone(ZoneInfo(zone)).date() + dt.timedelta(days=days))


@functools.lru_cache(maxsize=256)  # a GET needs three (the window's ends, today's): the same all day
def _local_midnight(zone: str, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


def _in_feed(
    professional_id: int | ColumnElement[int] | InstrumentedAttribute[int],
    window: tuple[dt.datetime, dt.datetime] | tuple[Any, Any],
):
    return (
        or_(Appointment.performer_id == professional_id, Appointment.accompanying_id == professional_id),
        Appointment.starts_at >= window[0],
        Appointment.starts_at < window[1],
    )


@functools.cache  # feed_contents counts them at every GET: the expressions are made once per setting
def _version_columns(show_patient_initials: bool) -> tuple:
    """What tells one state of a feed event from another: the appointment's id, its latest change and SEQUENCE,
    and its patient's latest change when the initials are shown. Every writer of the hub raises `updated_at`
    (the column's onupdate, in ORM and Core statements alike); the feed's ETag relies on it too."""
    columns = (Appointment.id, _raw(Appointment.updated_at), Appointment.sequence)
    return columns + ((_raw(Patient.updated_at),) if show_patient_initials else ())


def _event_columns(professional_id: int | ColumnElement[int]) -> tuple:
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


def feed_contents(
    session: Session, feed: ServedFeed, *, uid_domain: str, zone: str, now: dt.datetime | None = None
) -> tuple[list[tuple], Callable[[list[int] | None], list[tuple[tuple, FeedEvent]]]]:
    """The versions (`_version_columns`) of the feed's events in start order, what a process compares with the
    renderings it keeps (scheduling.ical.build_cached_feed), and `events_of(ids)`: the (version, event) of those
    ids, or of every event for None.

    One statement in the usual case: the versions, each with its event's full row when it changed after the
    latest change this process has seen in this feed (every row the first time), so that the events a GET must
    render have come with their versions and `events_of` queries nothing. It queries for any other missing one
    (a rendering evicted, a change committed with an earlier time than the mark, the render cache emptied): the
    mark decides what travels with the versions, never what is served, which stays keyed by version."""
    initials = feed.show_patient_initials
    key = (feed.professional_id, initials, zone)
    mark = _seen_through.get(key)
    window = feed_window(zone=zone, now=now)
    parameters = {"professional_id": feed.professional_id, "window_start": window[0], "window_end": window[1]}
    session.flush()  # what the ORM's autoflush would do: driver_rows has none
    statement = _contents_statement(initials, marked=mark is not None)
    # Run by the driver, as feed_for_token's: SQLAlchemy's execution of it cost a fifth of the feed's view.
    rows = driver_rows(session, statement, parameters | ({"mark": mark} if mark else {}))
    cut = len(_version_columns(initials))
    versions = [row[:cut] for row in rows]
    # The first event column (the kind) is never NULL: NULL there means the row stayed behind.
    shipped = {row[0]: (row[:cut], _event(row[0], row[1:3], row[cut:], uid_domain)) for row in rows if row[cut]}
    if versions:
        # Raw times compare as they sort: SQLite's ISO text, psycopg's datetimes.
        latest = max(max(version[1:cut:2]) for version in versions)
        _seen_through[key] = _instant(latest)

    def events_of(ids: list[int] | None) -> list[tuple[tuple, FeedEvent]]:
        wanted = ids if ids is not None else [version[0] for version in versions]
        rest = [appointment_id for appointment_id in wanted if appointment_id not in shipped]
        if not rest:
            return [shipped[appointment_id] for appointment_id in wanted]
        many = len(rest) * 2 > len(versions)  # then one query for the whole window rather than a long list of ids
        fetched = versioned_events(
            session,
            feed.professional_id,
            None if many else rest,
            show_patient_initials=initials,
            uid_domain=uid_domain,
            zone=zone,
            now=now,
        )
        return fetched if many else [shipped[i] for i in wanted if i in shipped] + fetched

    return versions, events_of


@functools.cache
def _contents_statement(initials: bool, *, marked: bool) -> Select:
    """feed_contents' statement, built once per setting with the professional, the window and the mark as
    parameters: the versions, then the event's columns — each NULL, when `marked`, unless the row changed after
    the mark."""
    professional_id = bindparam("professional_id", type_=Integer)
    event_columns = _event_columns(professional_id) + (_NAME_COLUMNS if initials else ())
    if marked:
        mark = bindparam("mark", type_=UTCDateTime)
        changed = Appointment.updated_at > mark
        changed = or_(changed, Patient.updated_at > mark) if initials else changed
        event_columns = tuple(case((changed, column)) for column in event_columns)
    # Named: driver_rows makes its rows named tuples, whose fields cannot be the anonymous columns' names.
    named = tuple(column.label(f"event_{i}") for i, column in enumerate(event_columns))
    return _feed_query(professional_id, _version_columns(initials) + named, initials, _WINDOW)


# The latest change (of an appointment, or of a patient when the initials are shown) each feed had when this
# process last read it, by (professional, initials shown, zone): what `feed_contents` ships in full. Not by the UIDs'
# domain, which comes from the request's Host header: any holder of a link could grow the dict with made-up hosts.
# The mark is the database's, whatever the domain; a domain whose renderings are not cached fetches them by id.
_seen_through: dict[tuple, dt.datetime] = {}


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


def _feed_query(professional_id, columns, join_patient, window, ids: Collection[int] | None = None) -> Select:
    query = select(*columns).where(*_in_feed(professional_id, window))
    if ids is not None:
        query = query.where(Appointment.id.in_(ids))
    if join_patient:
        query = query.join(Patient, Patient.id == Appointment.patient_id)
    return query.order_by(Appointment.starts_at, Appointment.id)


def _fetch(session, professional_id, columns, join_patient, window, ids: Collection[int] | None = None) -> list:
    session.flush()  # what the ORM's autoflush would do: the Core connection below skips the ORM's row handling
    query = _feed_query(professional_id, columns, join_patient, window, ids)
    return _raw_tuples(session.connection().execute(query))


def _raw_tuples(result) -> list:
    """The driver's own tuples: the columns have no result processing to apply, and a tuple hashes (as a key of the
    render cache) several times faster than a Row."""
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
