"""The iCalendar feed `/ical/<token>.ics` (content type, ETag / Last-Modified and 304, revocation) and the
professional's page `/me/calendar` that makes and revokes its link."""

import datetime as dt
import hashlib
import re

import pytest
from sqlalchemy import event, select, text

from hub.db import utcnow
from hub.errors import Forbidden
from hub.models import (
    AppointmentState,
    AuditEvent,
    CalendarFeed,
    PlaceKind,
    Profession,
    Role,
)
from hub.services import accounts, calendar_feeds
from scheduling import ical
from tests import ZONE, factories
from tests.queries import orm_executions, statements_on
from tests.web.test_booking_eligibility_pages import last_audit_id

CALENDAR = "text/calendar; charset=utf-8"


@pytest.fixture
def booked(db_session, cpts, nurse):
    """A confirmed assisted teleconsultation in two days, the nurse accompanying MARIE DURAND."""
    row = factories.appointment(
        db_session,
        performer=factories.professional(db_session, cpts, Profession.SPECIALIST),
        patient_row=factories.patient(db_session, cpts, birth_name="DURAND", first_birth_given_name="MARIE"),
        accompanying=nurse.professional,
        starts_at=(utcnow() + dt.timedelta(days=2)).replace(microsecond=0),
        created_by=factories.user(db_session, cpts, Role.COORDINATOR),
    )
    db_session.commit()
    return row


@pytest.fixture
def feed(db_session, nurse):
    row, raw = calendar_feeds.create_feed(db_session, nurse, nurse.professional)
    db_session.commit()
    return row, f"/ical/{raw}.ics"


def audit_rows(session, action: str, feed_id: int, *, after: int) -> list[AuditEvent]:
    """The feed's rows past the row `after`: on PostgreSQL the log keeps earlier tests' and runs' committed rows,
    some naming a feed that had the same id."""
    query = select(AuditEvent).where(
        AuditEvent.action == action, AuditEvent.target_id == str(feed_id), AuditEvent.id > after
    )
    return list(session.scalars(query))


def created_url(body: str) -> str:
    return re.search(r'id="lien" value="([^"]+)"', body).group(1)


# --- the feed --------------------------------------------------------------------------------------------------


def test_feed_is_a_calendar_with_validators(client, db_session, booked, feed):
    audited_before = last_audit_id(db_session)
    row, url = feed
    response = client.get(url)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Content-Type"] == CALENDAR
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["ETag"])
    assert response.headers["Last-Modified"].endswith(" GMT")
    assert body.startswith("BEGIN:VCALENDAR\r\n") and "BEGIN:VTIMEZONE" in body
    assert f"UID:appointment-{booked.id}@localhost" in body
    assert "SUMMARY:Téléconsultation assistée – M.D." in body and "DURAND" not in body
    (line,) = audit_rows(db_session, "calendar.fetch", row.id, after=audited_before)
    assert line.actor_user_id is None and line.actor_label == f"calendar-feed:{row.id}"
    assert '"events": 1' in line.details and "DURAND" not in line.details


def test_unchanged_feed_answers_304_without_a_body_or_an_audit_line(client, db_session, booked, feed):
    audited_before = last_audit_id(db_session)
    row, url = feed
    first = client.get(url)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == etag  # RFC 9110 §15.4.5; Werkzeug drops Last-Modified from a 304
    assert client.get(url, headers={"If-Modified-Since": last_modified}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"autre"', "If-Modified-Since": last_modified}).status_code == 200
    assert len(audit_rows(db_session, "calendar.fetch", row.id, after=audited_before)) == 2


def test_a_changed_appointment_gives_a_new_etag(client, db_session, booked, feed):
    _row, url = feed
    etag = client.get(url).headers["ETag"]
    booked.starts_at += dt.timedelta(hours=1)
    booked.ends_at += dt.timedelta(hours=1)
    booked.sequence += 1
    db_session.commit()
    response = client.get(url, headers={"If-None-Match": etag})
    assert response.status_code == 200 and response.headers["ETag"] != etag
    assert "SEQUENCE:1" in response.get_data(as_text=True)
    assert client.get(url, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304


def test_a_cancelled_appointment_stays_in_the_feed(client, db_session, booked, feed):
    _row, url = feed
    etag = client.get(url).headers["ETag"]
    booked.state, booked.sequence = AppointmentState.CANCELLED, 1
    db_session.commit()
    response = client.get(url, headers={"If-None-Match": etag})
    assert response.status_code == 200 and "STATUS:CANCELLED" in response.get_data(as_text=True)


def test_the_render_cache_never_serves_a_stale_event(client, db_session, cpts, nurse, booked, feed):
    """Each answer is the bytes of a feed built afresh, without the cache, whatever changed between two GETs:
    a change, a move, a cancellation, a deletion, and changes made in plain SQL as another process would (its
    writes raise updated_at, as the models' onupdate does, but not SEQUENCE), which only a cache checked
    against the database sees."""
    _row, url = feed
    coordinator = factories.user(db_session, cpts, Role.COORDINATOR)
    others = [
        factories.appointment(
            db_session,
            performer=booked.performer,
            patient_row=booked.patient,
            accompanying=nurse.professional,
            starts_at=booked.starts_at + dt.timedelta(days=day),
            created_by=coordinator,
        )
        for day in range(1, 5)
    ]
    db_session.commit()

    def fresh() -> bytes:
        events = calendar_feeds.feed_events(db_session, nurse.professional_id, uid_domain="localhost", zone=ZONE)
        return ical.build_feed(events, zone=ZONE, calendar_name="Hub CPTS – " + nurse.professional.full_name)

    def served() -> bytes:
        response = client.get(url)
        assert response.status_code == 200
        return response.get_data()

    ical.clear_render_cache()
    assert served() == fresh()
    changed, moved, cancelled, deleted = others
    changed.place_kind, changed.sequence = PlaceKind.PRACTICE, changed.sequence + 1
    moved.starts_at += dt.timedelta(hours=3)
    moved.ends_at += dt.timedelta(hours=3)
    moved.accompaniment_starts_at += dt.timedelta(hours=3)
    moved.accompaniment_ends_at += dt.timedelta(hours=3)
    cancelled.state = AppointmentState.CANCELLED
    db_session.delete(deleted)
    db_session.commit()
    body = served()
    assert body == fresh() and body.count(b"BEGIN:VEVENT") == 4
    assert f"appointment-{deleted.id}@".encode() not in body and b"STATUS:CANCELLED" in body
    assert b"LOCATION:Cabinet" in body

    later = utcnow() + dt.timedelta(seconds=1)
    if db_session.bind.dialect.name == "sqlite":  # as UTCDateTime stores it
        later = later.replace(tzinfo=None)
    db_session.execute(
        text("UPDATE appointments SET place_kind = 'officine', updated_at = :later WHERE id = :id"),
        {"id": changed.id, "later": later},
    )
    db_session.execute(
        text("UPDATE patients SET used_first_name = 'Zoé', updated_at = :later WHERE id = :id"),
        {"id": booked.patient_id, "later": later},
    )
    db_session.commit()
    body = served()
    assert body == fresh() and b"LOCATION:Officine" in body and b"LOCATION:Cabinet" not in body
    assert "– Z.D.".encode() in body and "– M.D.".encode() not in body


def test_a_changed_feed_takes_two_statements_and_a_change_dated_before_the_last_read_still_shows(
    client, db_session, engine, cpts, nurse, booked, feed
):
    """After one event changed, a GET reads the token with the feed's version in one statement, then the versions
    with the changed row's data in a second: nothing else (the audit line apart). A change whose time is not after
    the latest this process saw (a transaction that began earlier, another clock) does not travel with the
    versions: it is fetched by id, and shown."""
    _row, url = feed
    ical.clear_render_cache()
    first = client.get(url)
    assert first.status_code == 200
    booked.sequence += 1
    db_session.commit()
    with statements_on(engine) as seen:
        changed = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and b"SEQUENCE:1\r\n" in changed.get_data()
    assert len(seen) == 2, seen

    earlier = booked.updated_at - dt.timedelta(minutes=5)
    if db_session.bind.dialect.name == "sqlite":  # as UTCDateTime stores it
        earlier = earlier.astimezone(dt.UTC).replace(tzinfo=None)
    db_session.execute(
        text("UPDATE appointments SET place_kind = 'officine', sequence = 2, updated_at = :earlier WHERE id = :id"),
        {"id": booked.id, "earlier": earlier},
    )
    db_session.commit()
    body = client.get(url).get_data()
    assert b"LOCATION:Officine" in body and b"SEQUENCE:2\r\n" in body and body.count(b"BEGIN:VEVENT") == 1


def test_a_feed_is_read_by_the_driver_not_the_orm(app, client, booked, feed):
    """No statement of a GET goes through the ORM's execution, nor through SQLAlchemy's Core execution: the token's,
    the versions' and the audit row run on the driver (hub.db.driver_rows, driver_execute). Through the ORM the
    token's result handling cost more CPU than its round trip, and the versions' Core execution a third of the view
    (P7's second most frequent GET)."""
    _row, url = feed
    ical.clear_render_cache()
    engine = app.extensions["hub.engine"]
    core: list[str] = []

    def record(_conn, clauseelement, *_args):
        if "SAVEPOINT" not in str(clauseelement):  # the test's own transaction (db_session)
            core.append(str(clauseelement))

    event.listen(engine, "before_execute", record)
    try:
        with orm_executions() as (executed, loaded):
            cold, warm = client.get(url), client.get(url)
    finally:
        event.remove(engine, "before_execute", record)
    assert (cold.status_code, warm.status_code) == (200, 200) and warm.get_data() == cold.get_data()
    assert (executed, loaded) == ([], [])
    assert core == []


@pytest.mark.parametrize(
    ("base_url", "domain"),
    [("http://localhost:8080", "localhost"), ("https://XN--BCHER-KVA.example", "bücher.example")],
)
def test_the_uids_domain_is_the_host_name_of_the_request(client, booked, feed, base_url, domain):
    """The UIDs' domain is the host name of Werkzeug's `host_url` (an IRI: Punycode decoded, lower case, without the
    port), worked out once per host: the same for a second request as for the first."""
    _row, url = feed
    ical.clear_render_cache()
    first, second = client.get(url, base_url=base_url), client.get(url, base_url=base_url)
    assert first.get_data() == second.get_data()
    uids = re.findall(rb"UID:appointment-\d+@(.+)\r\n", first.get_data())
    assert uids == [domain.encode()]


def test_the_feed_is_a_light_read_outside_a_transaction(app, committed):
    """The token with the version, the versions with the events, the audit row: three statements, each on its own
    (P7). No BEGIN IMMEDIATE holding SQLite's one write lock from the token's SELECT on, no BEGIN and COMMIT round
    trips on PostgreSQL; the audit row is written when the feed is served, and a 304 writes none. Committed for
    real: the tests' rolled-back outer transaction would hide the very transactions this is about."""
    factory, created = committed
    with factory() as session:
        audited_before = last_audit_id(session)
        cpts = factories.cpts(session)
        created.append(cpts.id)
        nurse = factories.user(session, cpts, Role.PROFESSIONAL)
        factories.appointment(
            session,
            performer=factories.professional(session, cpts, Profession.SPECIALIST),
            patient_row=factories.patient(session, cpts),
            accompanying=nurse.professional,
            starts_at=(utcnow() + dt.timedelta(days=2)).replace(microsecond=0),
            created_by=factories.user(session, cpts, Role.COORDINATOR),
        )
        # Made by hand with an id no other test reaches: its audit rows stay (the log is append-only) and must not
        # be counted as another test's feed's once this one is purged and its id free again.
        raw = calendar_feeds.TOKEN_PREFIX + "light-read"
        row = CalendarFeed(
            id=7_000_017, professional_id=nurse.professional_id, token_hash=hashlib.sha256(raw.encode()).hexdigest()
        )
        session.add(row)
        session.commit()
    client, engine = app.test_client(), app.extensions["hub.engine"]
    seen: list[tuple[str, bool]] = []

    def record(conn, _cursor, statement, *_args):
        dbapi = conn.connection.dbapi_connection
        outside = dbapi.autocommit if engine.dialect.name == "postgresql" else not dbapi.in_transaction
        table = statement.split("FROM")[1].split()[0] if "FROM" in statement else statement.split()[2]
        seen.append((f"{statement.split()[0]} {table}", outside))

    event.listen(engine, "before_cursor_execute", record)
    try:
        served = client.get(f"/ical/{raw}.ics")
        unchanged = client.get(f"/ical/{raw}.ics", headers={"If-None-Match": served.headers["ETag"]})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert (served.status_code, unchanged.status_code) == (200, 304)
    once = ["SELECT calendar_feeds", "SELECT appointments"]
    assert [statement for statement, _ in seen] == [*once, "INSERT audit_events", *once[:1]], seen
    assert all(outside for _, outside in seen), seen
    with factory() as session:
        assert len(audit_rows(session, "calendar.fetch", row.id, after=audited_before)) == 1


def test_made_up_host_headers_do_not_grow_what_the_process_keeps(client, monkeypatch, booked, feed):
    """The UIDs' domain comes from the Host header, which the link's holder chooses: a new host is a new render
    context, but neither the feeds' marks nor the render cache's contexts may grow with the hosts sent."""
    monkeypatch.setattr(ical, "EVENT_CACHE_SIZE", 4)
    ical.clear_render_cache()
    _row, url = feed
    marks = len(calendar_feeds._seen_through)
    for n in range(12):
        response = client.get(url, base_url=f"http://h{n}.example.test")
        assert response.status_code == 200 and f"@h{n}.example.test".encode() in response.get_data()
    assert len(calendar_feeds._seen_through) <= marks + 1
    assert len(ical._rendered) <= 4


def test_feed_without_initials(client, db_session, nurse, booked):
    _row, raw = calendar_feeds.create_feed(db_session, nurse, nurse.professional, show_patient_initials=False)
    db_session.commit()
    body = client.get(f"/ical/{raw}.ics").get_data(as_text=True)
    assert "SUMMARY:Téléconsultation assistée\r\n" in body and "M.D." not in body


@pytest.mark.parametrize(
    "token", ["hubcal_inconnu", "inconnu", "hubcal_" + "x" * 200], ids=["unknown", "no-prefix", "too-long"]
)
def test_unknown_token_is_not_found(client, feed, token):
    assert client.get(f"/ical/{token}.ics").status_code == 404


def test_revoked_token_is_not_found(client, db_session, nurse, feed):
    row, url = feed
    assert client.get(url).status_code == 200
    calendar_feeds.revoke_feed(db_session, nurse, row)
    db_session.commit()
    assert client.get(url).status_code == 404


def test_deactivated_account_stops_the_feed(client, db_session, cpts, nurse, feed):
    _row, url = feed
    accounts.deactivate_user(db_session, factories.user(db_session, cpts, Role.ADMIN), nurse)
    db_session.commit()
    assert client.get(url).status_code == 404


def test_token_is_stored_as_its_digest_and_a_new_one_revokes_the_old(db_session, nurse):
    audited_before = last_audit_id(db_session)
    first, first_raw = calendar_feeds.create_feed(db_session, nurse, nurse.professional)
    second, second_raw = calendar_feeds.create_feed(db_session, nurse, nurse.professional)
    db_session.commit()
    assert second.token_hash == hashlib.sha256(second_raw.encode()).hexdigest()
    assert second_raw.startswith("hubcal_") and len(second_raw) > 40 and first_raw != second_raw
    assert first.revoked_at is not None and second.revoked_at is None
    assert calendar_feeds.feed_for_token(db_session, first_raw, zone=ZONE) is None
    served = calendar_feeds.feed_for_token(db_session, second_raw, zone=ZONE)
    assert served is not None and served.id == second.id
    assert calendar_feeds.active_feed(db_session, nurse.professional_id) is second
    assert len(audit_rows(db_session, "calendar.feed_revoke", first.id, after=audited_before)) == 1


def test_only_the_owner_manages_a_feed(db_session, cpts, nurse):
    other = factories.user(db_session, cpts, Role.PROFESSIONAL)
    with pytest.raises(Forbidden):
        calendar_feeds.create_feed(db_session, other, nurse.professional)
    row, _raw = calendar_feeds.create_feed(db_session, nurse, nurse.professional)
    with pytest.raises(Forbidden):
        calendar_feeds.revoke_feed(db_session, other, row)


# --- the page --------------------------------------------------------------------------------------------------


def test_page_without_a_feed(auth, nurse):
    auth.login(nurse)
    body = auth.client.get("/me/calendar").get_data(as_text=True)
    assert "Mon agenda dans mon calendrier" in body and "Vous n'avez aucun lien d'agenda actif" in body
    assert 'name="csrf_token"' in body
    assert re.search(r'id="f-show_patient_initials" name="show_patient_initials" value="true" checked', body)


def test_creating_a_feed_shows_its_url_once(auth, client, db_session, nurse, booked):
    audited_before = last_audit_id(db_session)
    auth.login(nurse)
    response = auth.post("/me/calendar", {"show_patient_initials": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 201 and "il ne sera plus jamais affiché" in body
    url = created_url(body)
    assert re.fullmatch(r"http://localhost/ical/hubcal_[A-Za-z0-9_-]{43}\.ics", url)
    assert 'href="webcal://localhost/ical/' in body
    page = auth.client.get("/me/calendar").get_data(as_text=True)
    assert url not in page and "Un lien est actif depuis" in page and "affichées" in page
    feed = db_session.scalar(select(CalendarFeed).where(CalendarFeed.professional_id == nurse.professional_id))
    assert feed.show_patient_initials and url.rsplit("/", 1)[1][:-4] not in feed.token_hash
    assert len(audit_rows(db_session, "calendar.feed_create", feed.id, after=audited_before)) == 1
    response = client.get(url.removeprefix("http://localhost"))
    assert response.status_code == 200 and "M.D." in response.get_data(as_text=True)


def test_creating_a_feed_without_initials(auth, client, nurse, booked):
    auth.login(nurse)
    url = created_url(auth.post("/me/calendar", {}).get_data(as_text=True))
    assert "masquées" in auth.client.get("/me/calendar").get_data(as_text=True)
    assert "M.D." not in client.get(url.removeprefix("http://localhost")).get_data(as_text=True)


def test_a_new_feed_replaces_the_old_one(auth, client, nurse):
    auth.login(nurse)
    first = created_url(auth.post("/me/calendar", {"show_patient_initials": "true"}).get_data(as_text=True))
    second = created_url(auth.post("/me/calendar", {"show_patient_initials": "true"}).get_data(as_text=True))
    assert client.get(first.removeprefix("http://localhost")).status_code == 404
    assert client.get(second.removeprefix("http://localhost")).status_code == 200


def test_revoking_from_the_page(auth, client, db_session, nurse, feed):
    audited_before = last_audit_id(db_session)
    row, url = feed
    auth.login(nurse)
    response = auth.post("/me/calendar/revoke")
    assert response.status_code == 302 and response.headers["Location"] == "/me/calendar"
    page = auth.client.get("/me/calendar").get_data(as_text=True)
    assert "Lien d&#39;agenda révoqué" in page and "Vous n'avez aucun lien d'agenda actif" in page
    assert client.get(url).status_code == 404
    assert len(audit_rows(db_session, "calendar.feed_revoke", row.id, after=audited_before)) == 1
    assert auth.post("/me/calendar/revoke").status_code == 302, "nothing left to revoke is not an error"


def test_forms_need_the_csrf_token(auth, db_session, nurse, feed):
    row, _url = feed
    auth.login(nurse)
    assert auth.client.post("/me/calendar", data={"show_patient_initials": "true"}).status_code == 400
    assert auth.client.post("/me/calendar/revoke").status_code == 400
    db_session.refresh(row)
    assert row.revoked_at is None


def test_a_user_without_a_professional_record_gets_an_explanation(auth, db_session, cpts):
    admin = factories.user(db_session, cpts, Role.ADMIN)
    db_session.commit()
    auth.login(admin)
    body = auth.client.get("/me/calendar").get_data(as_text=True)
    assert "réservé aux professionnels de santé" in body and "Créer le lien" not in body
    response = auth.post("/me/calendar", {"show_patient_initials": "true"})
    assert response.status_code == 403 and "réservé aux professionnels de santé" in response.get_data(as_text=True)
    assert auth.post("/me/calendar/revoke").status_code == 403


def test_the_page_needs_a_login(client):
    response = client.get("/me/calendar")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("first", ["performer", "nurse"])
def test_one_appointment_in_two_feeds_is_rendered_for_each_professional(
    client, db_session, cpts, nurse, booked, feed, first
):
    """The performer's feed shows the session, the accompanying IDEL's her longer window: the render cache keeps
    them apart whichever feed a process serves first."""
    _row, nurse_url = feed
    performer_user = factories.user(db_session, cpts, Role.PROFESSIONAL, professional_row=booked.performer)
    _performer_feed, raw = calendar_feeds.create_feed(db_session, performer_user, booked.performer)
    booked.accompaniment_starts_at = booked.starts_at - dt.timedelta(minutes=15)
    db_session.commit()
    urls = {"performer": f"/ical/{raw}.ics", "nurse": nurse_url}
    owners = {"performer": booked.performer_id, "nurse": nurse.professional_id}

    ical.clear_render_cache()
    served = {}
    for who in (first, "nurse" if first == "performer" else "performer"):
        response = client.get(urls[who])
        assert response.status_code == 200
        served[who] = response.get_data()

    for who, body in served.items():
        events = calendar_feeds.feed_events(db_session, owners[who], uid_domain="localhost", zone=ZONE)
        assert events, who
        assert body.count(b"BEGIN:VEVENT") == len(events)
        fresh_event = ical.render_event(events[0], ZONE).vevent
        assert fresh_event in body, who
    assert served["performer"] != served["nurse"]
