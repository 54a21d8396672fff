"""P3: a professional's iCalendar feed of 2,000 events, against building the same events with icalendar.

In-process: the hub is `hub.create_app()` (HUB_ENV=production settings) driven by Flask's test client, so the
figures hold the whole request pipeline (token lookup, version query, events query, rendering, audit line,
commit) but no HTTP server or socket. The database is a fresh SQLite file in a temporary directory (or
PostgreSQL), migrated with `hub.migrate.upgrade`, holding one CPTS, 200 patients and 2,000 appointments
of one IDEL from 30 days ago to 11 months ahead.

    .venv/bin/python bench/ical_feed.py                     # SQLite, then PostgreSQL
    .venv/bin/python bench/ical_feed.py --database sqlite --repeat 9

Measured, each `--repeat` times (median shown):
  baseline   the same 2,000 VEVENTs (same properties, VALARM, VTIMEZONE) built with icalendar's
             Calendar/Event/Alarm classes from plain Python data already in memory, serialised with to_ical();
  cold       GET of the feed with the process's render cache emptied first (goal ≤ 0.1× the baseline);
  304        the same GET with If-None-Match: the current ETag (goal: a 304, nothing built);
  one change GET with the previous ETag after one appointment was changed and committed (goal ≤ 0.02×);
  warm       GET without validators, nothing changed (for reference).
The script checks every answer's status, that the feed holds 2,000 events, that a warm answer is the same
bytes as the cold one, and that each 200 wrote exactly one audit line and each 304 none.
"""

import argparse
import datetime as dt
import os
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from icalendar import Alarm, Calendar, Event  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench.common import prepare_postgresql  # noqa: E402 (needs the repository on sys.path)
from hub import create_app, migrate  # noqa: E402
from hub.config import DEFAULTS  # noqa: E402
from hub.db import make_engine, make_session_factory, session_scope, utcnow  # noqa: E402
from hub.models import (  # noqa: E402
    Appointment,
    AppointmentKind,
    AppointmentState,
    AuditEvent,
    PlaceKind,
    Profession,
    Role,
)
from hub.services import calendar_feeds  # noqa: E402
from scheduling import ical  # noqa: E402
from tests import factories  # noqa: E402

COLD_GOAL = 0.1  # issue 17 raised both goals (were 1× and 0.1×)
CHANGE_GOAL = 0.02
EVENTS = 2000
PATIENTS = 200
ZONE = DEFAULTS["TIMEZONE"]  # the zone the hub runs in unless configured otherwise
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_hub"
STATES = (AppointmentState.CONFIRMED,) * 6 + (AppointmentState.PROPOSED,) * 3 + (AppointmentState.CANCELLED,)
NOW_YEAR = dt.date.today().year  # noqa: DTZ011 (a year of the feed's window, for its VTIMEZONE's cost)
PLACES = (PlaceKind.HOME, PlaceKind.PRACTICE, PlaceKind.PHARMACY, PlaceKind.DEDICATED_PLACE)


# --------------------------------------------------------------------------------------------------------------
# Database


@dataclass
class Seeded:
    feed_id: int
    path: str
    professional_id: int
    appointment_ids: list[int]


def seed(url: str, events: int) -> Seeded:
    """Migrate, then one CPTS, a specialist, an IDEL with an account and a feed, patients, appointments."""
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        with session_scope(make_session_factory(engine)) as session:
            cpts = factories.cpts(session, "CPTS banc d'essai P3")
            specialist = factories.professional(session, cpts, Profession.SPECIALIST)
            idel = factories.professional(session, cpts, Profession.NURSE)
            owner = factories.user(session, cpts, Role.PROFESSIONAL, professional_row=idel)
            coordinator = factories.user(session, cpts, Role.COORDINATOR)
            patients = [factories.patient(session, cpts).id for _ in range(PATIENTS)]
            first = utcnow().replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=29)
            step = dt.timedelta(days=330) / events
            rows = [
                _appointment(cpts.id, specialist.id, idel.id, coordinator.id, patients, first + i * step, i)
                for i in range(events)
            ]
            session.add_all(rows)
            feed, raw = calendar_feeds.create_feed(session, owner, idel, show_patient_initials=True)
            session.flush()
            seeded = Seeded(feed.id, f"/ical/{raw}.ics", idel.id, [row.id for row in rows])
        # Statistics, as autovacuum (PostgreSQL) would soon have them: without, PostgreSQL guesses one row and
        # joins the 2,000 appointments to their patients by 2,000 index lookups.
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
        return seeded
    finally:
        engine.dispose()


def _appointment(cpts_id, specialist_id, idel_id, creator_id, patients, starts_at, index) -> Appointment:
    ends_at = starts_at + dt.timedelta(minutes=15)
    return Appointment(
        cpts_id=cpts_id,
        kind=AppointmentKind.ASSISTED_TELECONSULTATION,
        state=STATES[index % len(STATES)],
        patient_id=patients[index % len(patients)],
        performer_id=specialist_id,
        accompanying_id=idel_id,
        place_kind=PLACES[index % len(PLACES)],
        starts_at=starts_at,
        ends_at=ends_at,
        accompaniment_starts_at=starts_at - dt.timedelta(minutes=15),
        accompaniment_ends_at=ends_at + dt.timedelta(minutes=30),
        created_by_user_id=creator_id,
        sequence=index % 3,
    )


def change_one(factory, appointment_id: int) -> None:
    """What a reschedule does to the row: an hour later, SEQUENCE raised (updated_at follows)."""
    with session_scope(factory) as session:
        row = session.get(Appointment, appointment_id)
        row.starts_at += dt.timedelta(hours=1)
        row.ends_at += dt.timedelta(hours=1)
        row.accompaniment_starts_at += dt.timedelta(hours=1)
        row.accompaniment_ends_at += dt.timedelta(hours=1)
        row.sequence += 1


def fetch_audit_lines(factory, feed_id: int) -> int:
    with factory() as session:
        query = select(func.count()).where(AuditEvent.action == "calendar.fetch", AuditEvent.target_id == str(feed_id))
        return session.scalar(query)


# --------------------------------------------------------------------------------------------------------------
# Baseline: icalendar from plain data in memory


def plain_events(factory, professional_id: int) -> list[dict]:
    """The feed's events as plain dicts (read once, outside any timing)."""
    with factory() as session:
        events = calendar_feeds.feed_events(session, professional_id, uid_domain="localhost", zone=ZONE)
    return [
        {
            "uid": e.uid,
            "start": e.starts_at,
            "end": e.ends_at,
            "summary": e.summary,
            "status": str(e.status),
            "sequence": e.sequence,
            "modified": e.last_modified,
            "location": e.location,
        }
        for e in events
    ]


def baseline_build(events: list[dict]) -> bytes:
    zone = ZoneInfo(ZONE)
    calendar = Calendar()
    calendar.add("prodid", ical.PRODID)
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "Hub CPTS")
    for data in events:
        event = Event()
        event.add("uid", data["uid"])
        event.add("dtstamp", data["modified"])
        event.add("dtstart", data["start"].astimezone(zone))
        event.add("dtend", data["end"].astimezone(zone))
        event.add("sequence", data["sequence"])
        event.add("status", data["status"])
        event.add("summary", data["summary"])
        event.add("location", data["location"])
        event.add("last-modified", data["modified"])
        if data["status"] != "CANCELLED":
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", data["summary"])
            alarm.add("trigger", -ical.ALARM_BEFORE)
            event.add_component(alarm)
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical()


# --------------------------------------------------------------------------------------------------------------
# Measurement


@dataclass
class Series:
    label: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)


class Invalid(RuntimeError):
    pass


def timed(function):
    began = time.perf_counter()
    result = function()
    return time.perf_counter() - began, result


def expect(response, status: int) -> None:
    if response.status_code != status:
        raise Invalid(f"expected HTTP {status}, got {response.status_code}: {response.get_data()[:300]!r}")


@dataclass
class Measurement:
    database: str
    baseline: Series
    cold: Series
    not_modified: Series
    changed: Series
    warm: Series
    parts: dict[str, Series]
    feed_bytes: int

    def ratio(self, series: Series) -> float:
        return series.median / self.baseline.median


def measure(database: str, url: str, repeat: int) -> Measurement:
    print(f"\n=== {database}: {url}", flush=True)
    if database == "postgresql":
        prepare_postgresql(url)
    seeded = seed(url, EVENTS)
    secret = secrets.token_urlsafe(48)
    app = create_app({"ENV": "production", "SECRET_KEY": secret, "AUDIT_KEY": secret, "DATABASE_URL": url})
    factory = app.extensions["hub.sessions"]
    client = app.test_client()
    try:
        return _measure(database, app, factory, client, seeded, repeat)
    finally:
        app.extensions["hub.engine"].dispose()


def _measure(database, app, factory, client, seeded: Seeded, repeat: int) -> Measurement:
    events = plain_events(factory, seeded.professional_id)
    if len(events) != EVENTS:
        raise Invalid(f"the feed holds {len(events)} events, not {EVENTS}")
    baseline = Series("baseline: icalendar, data in memory")
    for _ in range(repeat):
        seconds, _body = timed(lambda: baseline_build(events))
        baseline.seconds.append(seconds)
    report_line(baseline, None)

    audit_before = fetch_audit_lines(factory, seeded.feed_id)
    full_answers = 0
    expect(client.get(seeded.path), 200)  # one request first: imports, compiled SQL, templates
    full_answers += 1

    cold = Series("cold GET (render cache emptied)")
    for _ in range(repeat):
        ical.clear_render_cache()
        ical.vtimezone.cache_clear()
        seconds, response = timed(lambda: client.get(seeded.path))
        expect(response, 200)
        cold.seconds.append(seconds)
        full_answers += 1
    body, etag = response.get_data(), response.headers["ETag"]
    if body.count(b"BEGIN:VEVENT") != EVENTS:
        raise Invalid("the feed does not hold every event")
    report_line(cold, baseline)

    warm = Series("warm GET, no validator")
    not_modified = Series("GET If-None-Match → 304")
    for _ in range(repeat):
        seconds, response = timed(lambda: client.get(seeded.path))
        expect(response, 200)
        if response.get_data() != body:
            raise Invalid("a warm answer differs from the cold one")
        warm.seconds.append(seconds)
        full_answers += 1
        seconds, response = timed(lambda: client.get(seeded.path, headers={"If-None-Match": etag}))
        expect(response, 304)
        not_modified.seconds.append(seconds)
    report_line(not_modified, baseline)
    report_line(warm, baseline)

    changed = Series("GET after one event changed")
    for index in range(repeat):
        change_one(factory, seeded.appointment_ids[100 + index * 97])
        seconds, response = timed(partial(client.get, seeded.path, headers={"If-None-Match": etag}))
        expect(response, 200)
        if response.headers["ETag"] == etag:
            raise Invalid("a changed feed kept its ETag")
        etag = response.headers["ETag"]
        changed.seconds.append(seconds)
        full_answers += 1
    report_line(changed, baseline)

    written = fetch_audit_lines(factory, seeded.feed_id) - audit_before
    if written != full_answers:
        raise Invalid(f"{written} audit lines for {full_answers} full answers")
    print(f"  audit lines written {written} = full answers {full_answers}; 304s wrote none", flush=True)
    parts = measure_parts(app, factory, seeded, repeat)
    return Measurement(database, baseline, cold, not_modified, changed, warm, parts, len(body))


def measure_parts(app, factory, seeded: Seeded, repeat: int) -> dict[str, Series]:
    """Where a cold answer's time goes, outside the request pipeline."""
    names = ("token and version", "versions query", "events query", "render, cache empty", "render, cache full")
    parts = {name: Series(name) for name in (*names, "vtimezone")}
    options = {"show_patient_initials": True, "zone": ZONE}
    raw = seeded.path.removeprefix("/ical/").removesuffix(".ics")
    with app.app_context(), factory() as session:
        for _ in range(repeat):
            seconds, served = timed(lambda: calendar_feeds.feed_for_token(session, raw, zone=ZONE))
            parts["token and version"].seconds.append(seconds)
            # The requests before have read the feed: nothing changed since, the versions come alone.
            contents = partial(calendar_feeds.feed_contents, session, served, uid_domain="localhost", zone=ZONE)
            seconds, (versions, _events_of) = timed(contents)
            parts["versions query"].seconds.append(seconds)
            events_of = partial(
                calendar_feeds.versioned_events, session, seeded.professional_id, uid_domain="localhost", **options
            )
            seconds, events = timed(partial(events_of, None))
            parts["events query"].seconds.append(seconds)
            ical.clear_render_cache()
            ical.vtimezone.cache_clear()
            render = partial(
                ical.build_cached_feed,
                versions,
                lambda _ids, events=events: events,
                context="localhost",
                zone=ZONE,
                calendar_name="Hub CPTS",
            )
            seconds, _body = timed(render)
            parts["render, cache empty"].seconds.append(seconds)
            seconds, _body = timed(render)
            parts["render, cache full"].seconds.append(seconds)
            ical.vtimezone.cache_clear()
            seconds, _body = timed(lambda: ical.vtimezone(ZONE, NOW_YEAR, NOW_YEAR + 1))
            parts["vtimezone"].seconds.append(seconds)
            session.rollback()
    for series in parts.values():
        print(f"  part: {series.label:<26} {series.median * 1000:8.1f} ms", flush=True)
    return parts


def report_line(series: Series, baseline: Series | None) -> None:
    ratio = f"  ratio {series.median / baseline.median:6.3f}" if baseline else ""
    print(
        f"  {series.label:<38} median {series.median * 1000:8.1f} ms  best {series.best * 1000:8.1f} ms{ratio}",
        flush=True,
    )


def summary(results: list[Measurement], repeat: int) -> None:
    print(
        f"\nP3 summary ({dt.date.today().isoformat()}, {os.cpu_count()} cores, in-process Flask test client, "  # noqa: DTZ011
        f"{EVENTS} events, median of {repeat})"
    )
    header = (
        "database",
        "baseline ms",
        "cold ms",
        "cold ×",
        "304 ms",
        "1 change ms",
        "1 change ×",
        "best-of ×",
        "verdict",
    )
    rows = [header]
    for m in results:
        passed = m.ratio(m.cold) <= COLD_GOAL and m.ratio(m.changed) <= CHANGE_GOAL
        rows.append(
            (
                m.database,
                f"{m.baseline.median * 1000:.0f}",
                f"{m.cold.median * 1000:.1f}",
                f"{m.ratio(m.cold):.3f}",
                f"{m.not_modified.median * 1000:.2f}",
                f"{m.changed.median * 1000:.1f}",
                f"{m.ratio(m.changed):.3f}",
                f"{m.cold.best / m.baseline.best:.3f} / {m.changed.best / m.baseline.best:.3f}",
                "pass" if passed else "fail",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(f"goals: cold ≤ {COLD_GOAL:g}×, unchanged → 304, one event changed ≤ {CHANGE_GOAL:g}× the baseline")
    print("ratios are of medians; best-of × gives cold / one change as best run over best baseline run")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=7, help="runs of each measurement (default 7)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args(argv)
    databases = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    load_before = os.getloadavg()[0]
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-p3-") as tmp:
            for database in databases:
                url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}" if database == "sqlite" else args.pg_url
                results.append(measure(database, url, args.repeat))
    except Invalid as exc:
        print(f"invalid measurement: {exc}", file=sys.stderr)
        return 1
    summary(results, args.repeat)
    print(f"load average (1 min) before the run: {load_before:.2f}; other processes on the machine skew the figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
