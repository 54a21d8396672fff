"""iCalendar feeds: T7 of docs/guarantees.md (wall times with TZID, a VTIMEZONE, the same instants through two
independent parsers), stable UIDs, SEQUENCE, cancelled events kept, no health data beyond the owner's choice."""

import contextlib
import dataclasses
import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import icalendar
import pytest
import vobject
from sqlalchemy import event as sa_event

from hub.models import Appointment, AppointmentState, Profession, Role
from hub.services import calendar_feeds
from hub.services.calendar_feeds import EventStatus, FeedEvent
from scheduling import ical
from tests import ZONE, factories

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.UTC
# "Now" of the feed window in the database tests: the DST change of 29 March 2026 is inside it.
NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SUMMARY = "Téléconsultation assistée – M.D."


def paris(*args: int, fold: int = 0) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS, fold=fold)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def feed_event(number: int = 1, *, start: dt.datetime, minutes: int = 60, **overrides) -> FeedEvent:
    values = {
        "uid": f"appointment-{number}@hub.test",
        "starts_at": start.astimezone(UTC),
        "ends_at": (start + dt.timedelta(minutes=minutes)).astimezone(UTC),
        "summary": SUMMARY,
        "status": EventStatus.CONFIRMED,
        "sequence": 0,
        "last_modified": utc(2026, 2, 1, 8, 0),
        "location": "Cabinet",
    }
    return FeedEvent(**(values | overrides))


def dst_feed(**overrides) -> bytes:
    """Two Monday 14:00 events either side of the change of 29 March 2026."""
    events = [feed_event(1, start=paris(2026, 3, 23, 14, 0)), feed_event(2, start=paris(2026, 3, 30, 14, 0))]
    return ical.build_feed(events, calendar_name="Hub CPTS – Anne MARTIN", **({"zone": ZONE} | overrides))


# --- two independent parsers ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Parsed:
    uid: str
    start: dt.datetime
    end: dt.datetime
    summary: str
    status: str
    sequence: int
    location: str | None
    alarms: list[tuple[str, dt.timedelta]]


def with_icalendar(blob: bytes) -> list[Parsed]:
    calendar = icalendar.Calendar.from_ical(blob)
    return [
        Parsed(
            uid=str(event["UID"]),
            start=event["DTSTART"].dt.astimezone(UTC),
            end=event["DTEND"].dt.astimezone(UTC),
            summary=str(event["SUMMARY"]),
            status=str(event["STATUS"]),
            sequence=int(event["SEQUENCE"]),
            location=str(event["LOCATION"]) if "LOCATION" in event else None,
            alarms=[(str(alarm["ACTION"]), alarm["TRIGGER"].dt) for alarm in event.walk("VALARM")],
        )
        for event in calendar.walk("VEVENT")
    ]


def with_vobject(blob: bytes) -> list[Parsed]:
    calendar = vobject.readOne(blob.decode("utf-8"))
    return [
        Parsed(
            uid=event.uid.value,
            start=event.dtstart.value.astimezone(UTC),
            end=event.dtend.value.astimezone(UTC),
            summary=event.summary.value,
            status=event.status.value,
            sequence=int(event.sequence.value),
            location=event.location.value if hasattr(event, "location") else None,
            alarms=[(alarm.action.value, alarm.trigger.value) for alarm in getattr(event, "valarm_list", [])],
        )
        for event in calendar.contents.get("vevent", [])
    ]


PARSERS = pytest.mark.parametrize("parse", [with_icalendar, with_vobject], ids=["icalendar", "vobject"])


def vtimezone_tzinfo(zone: str, year: int):
    """vobject's (dateutil's) reading of our VTIMEZONE, under a TZID no library knows by name."""
    blob = ical.vtimezone(zone, year, year).replace(f"TZID:{zone}".encode(), b"TZID:Zone-de-test")
    calendar = vobject.readOne(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:test\r\n" + blob.decode() + "END:VCALENDAR\r\n"
    )
    return calendar.vtimezone.gettzinfo()


# --- T7 ------------------------------------------------------------------------------------------------------


def test_wall_times_carry_the_zone_and_the_feed_its_vtimezone():
    text = dst_feed().decode()
    assert "DTSTART;TZID=Europe/Paris:20260323T140000" in text
    assert "DTSTART;TZID=Europe/Paris:20260330T140000" in text
    assert "DTEND;TZID=Europe/Paris:20260330T150000" in text
    vtimezone = text[text.index("BEGIN:VTIMEZONE") : text.index("END:VTIMEZONE")]
    assert "TZID:Europe/Paris" in vtimezone and "BEGIN:STANDARD" in vtimezone and "BEGIN:DAYLIGHT" in vtimezone
    # The onset is the local time of the offset it ends: 02:00 CET becomes 03:00 CEST (RFC 5545 §3.6.5).
    assert "DTSTART:20260329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200" in vtimezone
    assert "DTSTART:20251026T030000\r\nRDATE:20261025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100" in vtimezone
    assert text.index("END:VTIMEZONE") < text.index("BEGIN:VEVENT")
    for line in ("BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Hub CPTS//Flux d'agenda//FR", "END:VCALENDAR"):
        assert line + "\r\n" in text
    assert "X-WR-CALNAME:Hub CPTS – Anne MARTIN" in text


@PARSERS
@pytest.mark.parametrize("tzid", ["Europe/Paris", "Zone-de-test"], ids=["named-zone", "vtimezone-only"])
def test_independent_parsers_read_the_same_instants(parse, tzid):
    """The second case renames the zone, so that the parser must use the VTIMEZONE we wrote."""
    blob = dst_feed().replace(b"Europe/Paris", tzid.encode())
    events = parse(blob)
    assert [(e.uid, e.start, e.end) for e in events] == [
        ("appointment-1@hub.test", utc(2026, 3, 23, 13, 0), utc(2026, 3, 23, 14, 0)),
        ("appointment-2@hub.test", utc(2026, 3, 30, 12, 0), utc(2026, 3, 30, 13, 0)),
    ]


@pytest.mark.parametrize(
    "zone",
    ["Europe/Paris", "America/Miquelon", "Pacific/Noumea", "Indian/Reunion", "America/Cayenne", "Australia/Lord_Howe"],
)
def test_vtimezone_gives_zoneinfo_offsets_at_every_instant_of_the_year(zone):
    """Read back by dateutil, the VTIMEZONE agrees with zoneinfo every half hour of 2026, both ways (UTC to
    local, and local to UTC for wall times that exist once); icalendar 7.3's own VTIMEZONE fails the first."""
    ours, truth = vtimezone_tzinfo(zone, 2026), ZoneInfo(zone)
    instant = utc(2026, 1, 1)
    while instant < utc(2027, 1, 1):
        assert instant.astimezone(ours).utcoffset() == instant.astimezone(truth).utcoffset(), instant
        wall = instant.astimezone(truth).replace(tzinfo=None, fold=0)
        once = wall.replace(tzinfo=truth).utcoffset() == wall.replace(tzinfo=truth, fold=1).utcoffset()
        if once:
            assert wall.replace(tzinfo=ours).utcoffset() == wall.replace(tzinfo=truth).utcoffset(), wall
        instant += dt.timedelta(minutes=30)


def test_the_second_of_two_ambiguous_october_times_is_written_in_utc():
    first = feed_event(1, start=paris(2026, 10, 25, 2, 30, fold=0), minutes=30)
    second = feed_event(2, start=paris(2026, 10, 25, 2, 30, fold=1), minutes=30)
    text = ical.build_feed([first, second], calendar_name="Agenda", zone=ZONE).decode()
    assert "DTSTART;TZID=Europe/Paris:20261025T023000" in text
    assert "DTSTART:20261025T013000Z" in text
    for parse in (with_icalendar, with_vobject):
        assert [e.start for e in parse(text.encode())] == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)]


# --- events --------------------------------------------------------------------------------------------------


@PARSERS
def test_event_properties_and_alarm(parse):
    blob = dst_feed()
    text = blob.decode()
    assert "DTSTAMP:20260201T080000Z" in text and "LAST-MODIFIED:20260201T080000Z" in text
    event = parse(blob)[0]
    assert event.summary == SUMMARY and event.status == "CONFIRMED" and event.sequence == 0
    assert event.location == "Cabinet"
    assert event.alarms == [("DISPLAY", -dt.timedelta(minutes=30))]


@PARSERS
def test_cancelled_event_is_kept_without_alarm(parse):
    blob = ical.build_feed(
        [feed_event(start=paris(2026, 3, 23, 14, 0), status=EventStatus.CANCELLED, sequence=3)],
        calendar_name="A",
        zone=ZONE,
    )
    (event,) = parse(blob)
    assert event.status == "CANCELLED" and event.sequence == 3 and event.alarms == []


@PARSERS
def test_text_is_escaped_and_lines_folded_at_75_octets(parse):
    summary = "Télésoin; suivi, pansement \\ bilan\nligne 2 – " + "é" * 80 + "\x07"
    location = "Lieu dédié, " + "x" * 200
    blob = ical.build_feed(
        [feed_event(start=paris(2026, 5, 4, 9, 0), summary=summary, location=location)], calendar_name="A", zone=ZONE
    )
    assert all(len(line) <= 75 for line in blob.split(b"\r\n"))
    assert b"\n" not in blob.replace(b"\r\n", b"")
    (event,) = parse(blob)
    assert event.summary == summary.replace("\x07", "") and event.location == location


def test_same_events_give_the_same_bytes_and_a_cached_feed_renders_changed_events_only():
    events = [feed_event(n, start=paris(2026, 6, 1, 9, 0) + dt.timedelta(days=n)) for n in range(1, 4)]
    first = ical.build_feed(events, calendar_name="A", zone=ZONE)
    assert ical.build_feed(events, calendar_name="A", zone=ZONE) == first
    # Versions standing for the database's: (number, sequence).
    ical.clear_render_cache()
    asked: list[list[int] | None] = []

    def events_of(current):
        def fetch(ids):
            asked.append(None if ids is None else sorted(ids))
            return [((n, e.sequence), e) for n, e in enumerate(current, 1) if ids is None or n in ids]

        return fetch

    def cached(current, context="hub.test"):
        versions = [(n, e.sequence) for n, e in enumerate(current, 1)]
        return ical.build_cached_feed(versions, events_of(current), context=context, calendar_name="A", zone=ZONE)

    assert cached(events) == first and asked == [None], "all missing: every event in one fetch"
    changed = [*events[:2], events[2]._replace(sequence=1)]
    second = cached(changed)
    assert second != first and b"SEQUENCE:1" in second
    assert second == ical.build_feed(changed, calendar_name="A", zone=ZONE)
    assert asked == [None, [3]], "only the changed event is fetched and rendered again"
    assert cached(events) == first and len(asked) == 2
    cached(events, context="other.test")
    assert asked[-1] is None, "another context is another key"
    versions = [(1, 0), (2, 0), (3, 2)]
    racing = ical.build_cached_feed(
        versions,
        lambda ids: [((3, 3), events[2]._replace(sequence=3))],
        context="hub.test",
        calendar_name="A",
        zone=ZONE,
    )
    assert b"SEQUENCE:3" in racing and racing.count(b"BEGIN:VEVENT") == 3, "changed in between: the newer is served"


def test_the_render_cache_is_bounded_and_eviction_changes_no_byte(monkeypatch):
    monkeypatch.setattr(ical, "EVENT_CACHE_SIZE", 4)
    ical.clear_render_cache()
    events = [feed_event(n, start=paris(2026, 6, 1, 9, 0) + dt.timedelta(days=n)) for n in range(1, 8)]
    versions = [(n, e.sequence) for n, e in enumerate(events, 1)]

    def events_of(ids):
        return [((n, e.sequence), e) for n, e in enumerate(events, 1) if ids is None or n in ids]

    expected = ical.build_feed(events, calendar_name="A", zone=ZONE)
    for _ in range(3):
        assert ical.build_cached_feed(versions, events_of, context="c", calendar_name="A", zone=ZONE) == expected
        assert sum(map(len, ical._rendered.values())) <= 4


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError):
        ical.build_feed([feed_event(start=paris(2026, 5, 4, 9, 0), status="DRAFT")], calendar_name="A", zone=ZONE)


def test_an_empty_feed_is_a_valid_calendar():
    blob = ical.build_feed([], calendar_name="A", zone=ZONE)
    assert with_icalendar(blob) == [] and with_vobject(blob) == []


@pytest.mark.parametrize(
    ("state", "as_performer", "status"),
    [
        (AppointmentState.PROPOSED, True, EventStatus.TENTATIVE),
        (AppointmentState.PROPOSED, False, EventStatus.TENTATIVE),
        (AppointmentState.CONFIRMED, False, EventStatus.CONFIRMED),
        (AppointmentState.CHECKED_IN, True, EventStatus.CONFIRMED),
        (AppointmentState.DONE, True, EventStatus.CONFIRMED),
        (AppointmentState.NO_SHOW, True, EventStatus.CONFIRMED),
        (AppointmentState.DEGRADED, True, EventStatus.CONFIRMED),
        (AppointmentState.DECLINED, True, EventStatus.TENTATIVE),
        (AppointmentState.DECLINED, False, EventStatus.CANCELLED),
        (AppointmentState.CANCELLED, True, EventStatus.CANCELLED),
        (AppointmentState.CANCELLED, False, EventStatus.CANCELLED),
    ],
)
def test_event_status_of_each_state(state, as_performer, status):
    assert calendar_feeds.event_status(state, as_performer=as_performer) is status


# --- from appointments (database) ----------------------------------------------------------------------------


@pytest.fixture
def people(db_session, cpts):
    return SimpleNamespace(
        cpts=cpts,
        coordinator=factories.user(db_session, cpts, Role.COORDINATOR),
        specialist=factories.professional(db_session, cpts, Profession.SPECIALIST),
        idel=factories.professional(db_session, cpts, Profession.NURSE),
        patient=factories.patient(
            db_session, cpts, birth_name="DURAND", first_birth_given_name="MARIE", used_last_name=None
        ),
    )


def appointment(session, people, *, starts_at: dt.datetime, minutes: int = 15, **overrides) -> Appointment:
    """A booked assisted teleconsultation of these people: the specialist for `minutes`, the IDEL 15 min before
    to 30 min after."""
    return factories.appointment(
        session,
        patient_row=people.patient,
        performer=people.specialist,
        accompanying=people.idel,
        created_by=people.coordinator,
        starts_at=starts_at,
        minutes=minutes,
        **overrides,
    )


def events_of(session, professional, **options) -> list[FeedEvent]:
    options = {"uid_domain": "hub.test", "now": NOW} | options
    return calendar_feeds.feed_events(session, professional.id, **({"zone": ZONE} | options))


def build(session, professional, **options) -> bytes:
    return ical.build_feed(events_of(session, professional, **options), calendar_name="Agenda", zone=ZONE)


@contextlib.contextmanager
def statements(engine):
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)


def test_performer_and_accompanying_professional_each_see_their_own_times(db_session, people):
    booked = appointment(db_session, people, starts_at=paris(2026, 3, 30, 14, 0))
    for professional, expected in ((people.specialist, (14, 0, 14, 15)), (people.idel, (13, 45, 14, 45))):
        (event,) = events_of(db_session, professional)
        assert event.uid == f"appointment-{booked.id}@hub.test"
        start, end = event.starts_at.astimezone(PARIS), event.ends_at.astimezone(PARIS)
        assert (start.hour, start.minute, end.hour, end.minute) == expected
        assert event.location == "Domicile (organisé spécifiquement)"


def test_summary_has_the_kind_and_initials_and_never_the_name(db_session, people):
    appointment(db_session, people, starts_at=paris(2026, 3, 30, 14, 0))
    with_initials = build(db_session, people.idel).decode()
    assert f"SUMMARY:{SUMMARY}\r\n" in with_initials
    without = build(db_session, people.idel, show_patient_initials=False).decode()
    assert "SUMMARY:Téléconsultation assistée\r\n" in without and "M.D." not in without
    for text in (with_initials, without):
        assert "DURAND" not in text.upper() and "MARIE" not in text.upper()
        assert people.patient.birth_date.strftime("%Y%m%d") not in text


def test_used_names_give_the_initials(db_session, people):
    people.patient.used_last_name, people.patient.used_first_name = "Lefèvre", "Élodie"
    appointment(db_session, people, starts_at=paris(2026, 3, 30, 14, 0))
    (event,) = events_of(db_session, people.idel)
    assert event.summary == "Téléconsultation assistée – É.L."


def test_uid_is_stable_and_sequence_rises_after_a_change(db_session, people):
    booked = appointment(db_session, people, starts_at=paris(2026, 3, 23, 14, 0))
    before = with_vobject(build(db_session, people.specialist))
    booked.starts_at = paris(2026, 3, 30, 14, 0).astimezone(UTC)  # moved to next Monday, same wall time
    booked.ends_at = booked.starts_at + dt.timedelta(minutes=15)
    booked.sequence += 1
    db_session.flush()
    after = with_vobject(build(db_session, people.specialist))
    assert before[0].uid == after[0].uid == f"appointment-{booked.id}@hub.test"
    assert (before[0].sequence, after[0].sequence) == (0, 1)
    assert (before[0].start, after[0].start) == (utc(2026, 3, 23, 13, 0), utc(2026, 3, 30, 12, 0))


def test_cancelled_appointment_stays_in_the_feed_as_cancelled(db_session, people):
    booked = appointment(db_session, people, starts_at=paris(2026, 3, 30, 14, 0))
    booked.state, booked.sequence = AppointmentState.CANCELLED, 1
    db_session.flush()
    (event,) = with_icalendar(build(db_session, people.idel))
    assert event.status == "CANCELLED" and event.sequence == 1 and event.alarms == []


def test_window_is_30_days_back_to_a_year_ahead_and_only_the_professional(db_session, people):
    today = NOW.astimezone(PARIS).replace(hour=0, minute=0)
    inside = [
        appointment(db_session, people, starts_at=today - dt.timedelta(days=30)),
        appointment(db_session, people, starts_at=today + dt.timedelta(days=365, hours=23)),
        appointment(db_session, people, starts_at=paris(2026, 3, 30, 14, 0), accompanying_id=None),
    ]
    appointment(db_session, people, starts_at=today - dt.timedelta(days=30, minutes=1))
    appointment(db_session, people, starts_at=today + dt.timedelta(days=366))
    other = factories.professional(db_session, people.cpts, Profession.SPECIALIST)
    appointment(db_session, people, starts_at=paris(2026, 4, 6, 14, 0), performer_id=other.id, accompanying_id=None)
    assert [e.uid for e in events_of(db_session, people.specialist)] == [
        f"appointment-{a.id}@hub.test" for a in (inside[0], inside[2], inside[1])
    ]
    assert len(events_of(db_session, people.idel)) == 2


@pytest.mark.parametrize("initials", [True, False])
def test_events_and_version_take_one_query_whatever_the_number_of_events(db_session, engine, people, initials):
    _feed, raw = calendar_feeds.create_feed(
        db_session,
        factories.user(db_session, people.cpts, professional_row=people.idel),
        people.idel,
        show_patient_initials=initials,
    )
    counts = []
    for number in (1, 25):
        for index in range(number):
            appointment(db_session, people, starts_at=paris(2026, 4, 1, 8, 0) + dt.timedelta(days=index))
        with statements(engine) as seen:
            events = events_of(db_session, people.idel, show_patient_initials=initials)
            assert calendar_feeds.feed_for_token(db_session, raw, now=NOW, zone=ZONE) is not None
        counts.append(len(seen))
        assert len(events) >= number
    assert counts == [2, 2]


def test_version_changes_with_every_change_of_the_feed_and_only_then(db_session, people):
    owner = factories.user(db_session, people.cpts, professional_row=people.idel)
    _feed, raw = calendar_feeds.create_feed(db_session, owner, people.idel)
    booked = appointment(db_session, people, starts_at=paris(2026, 3, 30, 14, 0))

    def version(**options):
        served = calendar_feeds.feed_for_token(db_session, raw, **({"now": NOW, "zone": ZONE} | options))
        assert served is not None
        return served.version

    seen = [version()]
    assert version() == seen[0], "nothing changed, nothing to send"

    booked.sequence += 1
    db_session.flush()
    changed_at = booked.updated_at
    seen.append(version())
    booked.state = AppointmentState.CANCELLED
    db_session.flush()
    seen.append(version())
    people.patient.used_first_name = "Léa"  # the initials shown change
    db_session.flush()
    seen.append(version())
    appointment(db_session, people, starts_at=paris(2026, 4, 6, 14, 0))
    seen.append(version())
    seen.append(version(now=NOW + dt.timedelta(days=1)))  # the window moved
    seen.append(version(salt="2"))
    assert len({v.etag for v in seen}) == len(seen)
    assert all(v.last_modified <= dt.datetime.now(UTC) for v in seen)
    assert seen[1].last_modified == changed_at
