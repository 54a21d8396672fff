"""iCalendar (RFC 5545) feeds: a VCALENDAR of events in the territory's wall time, with its VTIMEZONE.

Pure: no Flask, no database. `build_feed` renders `FeedEvent` values; `build_cached_feed` renders a feed
through a per-process cache of rendered events keyed by their versions as read from the database at each
request (hub.services.calendar_feeds.feed_contents: id, latest change, SEQUENCE), so that a feed where one
event changed fetches and renders that event only, and a change made by any process is a new version:
the cache is checked against the database every time, never trusted.

The VEVENTs are written here rather than through icalendar's component classes: they have a fixed
shape, and icalendar's generic machinery costs about half a millisecond per event (bench/ical_feed.py).
The VTIMEZONE is made from zoneinfo's transitions, with each onset in the local time of the offset it
ends, as RFC 5545 §3.6.5 asks (icalendar 7.3's `Timezone.from_tzinfo` puts the DAYLIGHT onset an hour
late). Both parsers of the test suite, icalendar and vobject, re-read what is written here.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from hub.services.calendar_feeds import FeedEvent

PRODID = "-//Hub CPTS//Flux d'agenda//FR"
ALARM_BEFORE = dt.timedelta(minutes=30)
REFRESH_INTERVAL = "PT15M"  # a hint to calendar apps; unchanged feeds cost them a 304
# Rendered events kept per process: about 1.2 kB each, key included.
EVENT_CACHE_SIZE = 20_000
# Bump when the rendering changes, so that ETags computed from the data alone change with it.
FORMAT_VERSION = "1"
STATUSES = frozenset({"TENTATIVE", "CONFIRMED", "CANCELLED"})  # RFC 5545 §3.8.1.11, for a VEVENT

CRLF = "\r\n"
LINE_OCTETS = 75
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ESCAPED = re.compile(r"[\\;,\x00-\x1f\x7f]")  # what a TEXT value escapes or drops
_SCAN_STEP = dt.timedelta(hours=6)  # shorter than any gap between two offset changes of a real zone


class Rendered(NamedTuple):
    """A VEVENT's bytes, and the local years it spans (the VTIMEZONE must cover them)."""

    vevent: bytes
    first_year: int
    last_year: int


def build_feed(
    events: Iterable[FeedEvent],
    *,
    zone: str,
    calendar_name: str,
    alarm_before: dt.timedelta | None = ALARM_BEFORE,
) -> bytes:
    """The VCALENDAR of `events` (UTF-8, CRLF lines folded at 75 octets): times as `TZID=<zone>` wall
    times with the zone's VTIMEZONE, a DISPLAY alarm `alarm_before` each event that is not cancelled.

    The same events give the same bytes: nothing depends on the time of the call."""
    return _assemble([render_event(event, zone, alarm_before) for event in events], zone, calendar_name)


def build_cached_feed(
    versions: Sequence[tuple],
    events_of: Callable[[list[int] | None], Iterable[tuple[tuple, FeedEvent]]],
    *,
    context: Hashable,
    zone: str,
    calendar_name: str,
    alarm_before: dt.timedelta | None = ALARM_BEFORE,
) -> bytes:
    """`build_feed` of the events whose versions are `versions` (in feed order, each starting with the event's
    id), rendering only those this process has not rendered at that version. `events_of(ids)` gives the
    (version, event) of those ids, or of every event for None (cheaper than a long list of ids); the caller's
    promise: an event depends on nothing but its version and `context`.

    An event fetched at a newer version than listed (changed in between) is served and kept at its own
    version; one gone in between is left out."""
    key = (context, zone, alarm_before)
    cache = _rendered.get(key, {})
    parts = [cache.get(version) for version in versions]
    missing = {version[0] for version, part in zip(versions, parts, strict=True) if part is None}
    if missing:
        fetched: dict[int, Rendered] = {}
        for version, event in events_of(list(missing) if len(missing) * 2 <= len(versions) else None):
            if version[0] in missing:
                fetched[version[0]] = _keep(key, version, render_event(event, zone, alarm_before))
        parts = [part or fetched.get(version[0]) for version, part in zip(versions, parts, strict=True)]
    return _assemble([part for part in parts if part is not None], zone, calendar_name)


def _keep(key: Hashable, version: tuple, rendered: Rendered) -> Rendered:
    if sum(map(len, _rendered.values())) >= EVENT_CACHE_SIZE:
        for context, kept in list(_rendered.items()):
            _evict_oldest_half(kept)
            if not kept:
                # An emptied context goes too: contexts come from requests (the Host header), so keeping them
                # would let the dict grow past EVENT_CACHE_SIZE without holding a single rendering.
                _rendered.pop(context, None)
    _rendered.setdefault(key, {})[version] = rendered
    return rendered


# Rendered events by (context, zone, alarm), then by version; a dict keeps insertion order, the oldest first. Only
# contexts holding a rendering are kept, so it has at most EVENT_CACHE_SIZE of them.
_rendered: dict[Hashable, dict[tuple, Rendered]] = {}


def _evict_oldest_half(cache: dict) -> None:
    for key in list(cache)[: (len(cache) + 1) // 2]:
        cache.pop(key, None)  # another thread may have evicted it


def clear_render_cache() -> None:
    """Forget every rendered event (benchmarks' cold runs, tests)."""
    _rendered.clear()


def _assemble(rendered: list[Rendered], zone: str, calendar_name: str) -> bytes:
    parts = [_calendar_head(calendar_name, zone)]
    if rendered:
        parts.append(vtimezone(zone, min(r.first_year for r in rendered), max(r.last_year for r in rendered)))
    parts.extend(r.vevent for r in rendered)
    parts.append(b"END:VCALENDAR\r\n")
    return b"".join(parts)


def render_event(event: FeedEvent, zone: str, alarm_before: dt.timedelta | None = ALARM_BEFORE) -> Rendered:
    """One VEVENT, and the local years it spans."""
    if event.status not in STATUSES:
        raise ValueError(f"not a VEVENT status: {event.status!r}")
    tz = ZoneInfo(zone)
    start, end = event.starts_at.astimezone(tz), event.ends_at.astimezone(tz)
    modified = _utc(event.last_modified)
    lines = [
        "BEGIN:VEVENT\r\n",
        _line("UID", event.uid),
        f"DTSTAMP:{modified}\r\n",
        _time_property("DTSTART", start, event.starts_at, zone),
        _time_property("DTEND", end, event.ends_at, zone),
        f"SEQUENCE:{event.sequence}\r\nSTATUS:{event.status}\r\n",
        _common_line("SUMMARY", event.summary),
    ]
    if event.location:
        lines.append(_common_line("LOCATION", event.location))
    lines.append(f"LAST-MODIFIED:{modified}\r\n")
    if alarm_before is not None and event.status != "CANCELLED":
        lines.append(_alarm(event.summary, alarm_before))
    lines.append("END:VEVENT\r\n")
    return Rendered("".join(lines).encode(), start.year, end.year)


def _line(name: str, value: str) -> str:
    """The folded content line `NAME:value` of a TEXT value."""
    return _fold(f"{name}:{_text(value)}")


@functools.lru_cache(maxsize=4096)
def _common_line(name: str, value: str) -> str:
    """`_line` of a value many events share (a summary: a kind of act and initials; a place)."""
    return _line(name, value)


@functools.lru_cache(maxsize=4096)
def _alarm(summary: str, before: dt.timedelta) -> str:
    return "".join(
        (
            "BEGIN:VALARM\r\nACTION:DISPLAY\r\n",
            _line("DESCRIPTION", summary),
            f"TRIGGER:-{_duration(before)}\r\nEND:VALARM\r\n",
        )
    )


@functools.lru_cache(maxsize=1024)  # one per owner's name and zone
def _calendar_head(calendar_name: str, zone: str) -> bytes:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{_text(PRODID)}",
        "CALSCALE:GREGORIAN",
        f"NAME:{_text(calendar_name)}",
        f"X-WR-CALNAME:{_text(calendar_name)}",
        f"X-WR-TIMEZONE:{_text(zone)}",
        f"REFRESH-INTERVAL;VALUE=DURATION:{REFRESH_INTERVAL}",
        f"X-PUBLISHED-TTL:{REFRESH_INTERVAL}",
    ]
    return "".join(map(_fold, lines)).encode()


# --- time zones --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def vtimezone(zone: str, first_year: int, last_year: int) -> bytes:
    """The VTIMEZONE of `zone` valid from 1 January of `first_year` to 31 December of `last_year`: one
    STANDARD or DAYLIGHT observance per kind of change, its first onset as DTSTART and the others as RDATE."""
    tz = ZoneInfo(zone)
    start = dt.datetime(first_year, 1, 1, tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime(last_year + 1, 1, 1, tzinfo=tz).astimezone(dt.UTC)
    changes = list(_offset_changes(tz, start - dt.timedelta(days=400), end))
    before = [change for change in changes if change[0] < start]
    kept = [change for change in changes if change[0] >= start]
    if before:
        kept.insert(0, before[-1])
    else:
        kept.insert(0, (start, start.astimezone(tz), start.astimezone(tz)))
    observances: dict[tuple, list[str]] = {}
    for instant, old, new in kept:
        key = (old.utcoffset(), new.utcoffset(), new.tzname(), bool(new.dst()))
        onset = (instant + old.utcoffset()).replace(tzinfo=None)  # local time of the offset it ends
        observances.setdefault(key, []).append(_local_text(onset))
    lines = ["BEGIN:VTIMEZONE", f"TZID:{_text(zone)}"]
    for (offset_from, offset_to, name, is_dst), onsets in sorted(observances.items(), key=lambda kv: kv[1][0]):
        kind = "DAYLIGHT" if is_dst else "STANDARD"
        lines += [f"BEGIN:{kind}", f"DTSTART:{onsets[0]}"]
        lines += [f"RDATE:{onset}" for onset in onsets[1:]]
        lines += [f"TZOFFSETFROM:{_offset(offset_from)}", f"TZOFFSETTO:{_offset(offset_to)}"]
        if name:
            lines.append(f"TZNAME:{_text(name)}")
        lines.append(f"END:{kind}")
    lines.append("END:VTIMEZONE")
    return "".join(map(_fold, lines)).encode()


def _offset_changes(tz: ZoneInfo, start: dt.datetime, end: dt.datetime):
    """(instant, local before, local after) of every change of offset, DST flag or name in [start, end)."""
    previous_instant, previous = start, start.astimezone(tz)
    instant = start
    while instant < end:
        instant = min(instant + _SCAN_STEP, end)
        current = instant.astimezone(tz)
        if _observance(current) != _observance(previous):
            change = _bisect_change(tz, previous_instant, instant)
            yield change, (change - dt.timedelta(seconds=1)).astimezone(tz), change.astimezone(tz)
        previous_instant, previous = instant, current


def _bisect_change(tz: ZoneInfo, low: dt.datetime, high: dt.datetime) -> dt.datetime:
    """The first second of [low, high] in the observance of `high` (one change between them)."""
    target = _observance(high.astimezone(tz))
    while high - low > dt.timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if _observance(middle.astimezone(tz)) == target:
            high = middle
        else:
            low = middle
    return high


def _observance(local: dt.datetime) -> tuple:
    return local.utcoffset(), local.dst(), local.tzname()


# --- values ------------------------------------------------------------------------------------------------


def _time_property(name: str, local: dt.datetime, value: dt.datetime, zone: str) -> str:
    """`NAME;TZID=zone:wall time`, or UTC when the wall time is the second of an ambiguous pair (the
    October hour repeated, which zoneinfo marks fold=1): RFC 5545 reads an ambiguous TZID time as its
    first occurrence. A line of the zone's name and a time is short enough never to need folding."""
    if local.fold:
        return f"{name}:{_utc(value)}\r\n"
    return f"{name};TZID={zone}:{_local_text(local)}\r\n"


def _local_text(value: dt.datetime) -> str:
    """YYYYMMDDTHHMMSS of the wall time (isoformat and slices: a third of strftime's cost)."""
    text = value.isoformat()
    return f"{text[:4]}{text[5:7]}{text[8:10]}T{text[11:13]}{text[14:16]}{text[17:19]}"


def _utc(value: dt.datetime) -> str:
    return _local_text(value.astimezone(dt.UTC)) + "Z"


def _offset(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02d}{minutes:02d}" + (f"{seconds:02d}" if seconds else "")


def _duration(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 60:
        return f"PT{seconds}S"
    return f"PT{seconds // 60}M"


def _text(value: str) -> str:
    """A TEXT value (RFC 5545 §3.3.11): backslash, semicolon, comma and newlines escaped, other controls dropped."""
    if not _ESCAPED.search(value):
        return value
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    value = value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    return _CONTROL.sub("", value)


def _fold(line: str) -> str:
    """The content line ended by CRLF, folded so that no physical line passes 75 octets (§3.1).

    Never inside a UTF-8 sequence, and never just after a backslash: some clients mishandle an escape
    split across lines."""
    if len(line) <= LINE_OCTETS and (line.isascii() or len(line.encode()) <= LINE_OCTETS):
        return line + CRLF
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for char in line:
        octets = len(char.encode())
        if size + octets > LINE_OCTETS:
            carried = current.pop() if len(current) > 1 and current[-1] == "\\" else None
            pieces.append("".join(current))
            current, size = [" "], 1  # a continuation line starts with one space
            if carried:
                current.append(carried)
                size += 1
        current.append(char)
        size += octets
    pieces.append("".join(current))
    return CRLF.join(pieces) + CRLF
