"""GET /api/v1/me/desk: the counts of the caller's home page, the parts their roles call for, never a patient."""

import datetime as dt

import pytest
from sqlalchemy import event

from hub.api.desk import parts_of
from hub.db import utcnow
from hub.models import AppointmentState, Profession, ReferralState, Role
from hub.schemas.desk import DeskOut, desk_json
from hub.services import accounts
from tests import factories
from tests.queries import forbid_lazy_loads
from tests.web.test_desk_pages import TODAY_14H, build_coordination, delivered_report, past_session
from tests.web.test_outbox_backlog_pages import LATE, due

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def coordination(db_session, territory):
    return build_coordination(db_session, territory)


def test_the_coordinators_counts(api_as, coordination, clock):
    t = coordination.t
    clock.shift(dt.timedelta(hours=3))

    response = api_as(t.coordinator).get("/api/v1/me/desk")

    assert response.status_code == 200
    body = response.get_json()
    desk = body["coordinator"]
    assert {
        key: desk[key] for key in desk if key.endswith(("triage", "schedule", "visits", "idel", "reports", "sends"))
    } == {
        "referrals_to_triage": 1,
        "urgent_referrals_to_triage": 1,
        "referrals_to_schedule": 0,
        "unconfirmed_visits": 1,
        "visits_without_idel": 1,
        "late_reports": 1,
        "failed_sends": 1,
    }
    assert desk["oldest_unconfirmed_asked_at"] == "2026-11-16T08:00:00+00:00"
    assert desk["sessions"] == [
        {
            "program_id": t.program.id,
            "program_name": "Téléconsultation cardiologie CH Périgueux",
            "starts_at": "2026-11-23T13:00:00+00:00",
            "slots": 3,
            "free_slots": 1,
        }
    ]
    assert {key for key, part in body.items() if part is None} == {"idel", "pharmacist", "gp", "specialist", "admin"}
    assert coordination.waiting.patient.display_name not in response.get_data(as_text=True)


def test_a_visit_without_idel_is_idel_a_trouver_in_the_api(api_as, coordination):
    answer = api_as(coordination.t.coordinator).get(f"/api/v1/appointments/{coordination.without.id}").get_json()
    assert answer["state"] == "proposed" and answer["state_label"] == "IDEL à trouver"
    asked = api_as(coordination.t.coordinator).get(f"/api/v1/appointments/{coordination.waiting.id}").get_json()
    assert asked["state_label"] == "Proposé"


def test_the_idels_counts(api_as, db_session, territory):
    t = territory
    factories.visit(db_session, t)
    factories.visit(db_session, t, TODAY_14H, state=AppointmentState.CONFIRMED)
    db_session.commit()

    body = api_as(t.idel_user).get("/api/v1/me/desk").get_json()

    assert body["idel"] == {
        "day": "2026-11-16",
        "visits_to_confirm": 1,
        "today_visits": 1,
        "tomorrow_visits": 0,
        "later_visits": 0,
    }
    assert body["coordinator"] is None


def test_the_gps_and_the_specialists_counts(api_as, db_session, territory):
    t = territory
    gp = factories.clinician(db_session, t.cpts, Profession.GENERAL_PRACTITIONER)
    factories.referral(db_session, t.patient, author=gp)
    factories.referral(db_session, t.patient, author=gp, state=ReferralState.DRAFT)
    received = delivered_report(db_session, t, gp.professional)
    cardiologist = factories.user(db_session, t.cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
    past_session(db_session, t, hours_ago=72)
    db_session.commit()

    gp_desk = api_as(gp).get("/api/v1/me/desk").get_json()["gp"]
    assert gp_desk == {
        "referrals": [
            {"state": "draft", "state_label": "Brouillon", "count": 1},
            {"state": "submitted", "state_label": "Envoyé", "count": 1},
        ],
        "reports_received_30_days": 1,
        "recent_report_ids": [received.id],
        "proposal_ids": [],
        "new_patient_capacity": 0,
    }
    specialist = api_as(cardiologist).get("/api/v1/me/desk").get_json()["specialist"]
    assert specialist == {
        "session_day": None,
        "session_patients": 0,
        "reports_to_sign": 1,
        "late_reports_to_sign": 1,
        "teleexpertise_to_answer": 0,
        "next_teleexpertise_deadline": None,
    }


def test_the_admins_counts(api_as, db_session, cpts, admin):
    factories.user(db_session, cpts, Role.PROFESSIONAL, is_active=False)
    db_session.commit()

    desk = api_as(admin).get("/api/v1/me/desk").get_json()["admin"]

    assert (desk["active_users"], desk["inactive_users"], desk["failed_sends"]) == (1, 1, 0)
    mssante = next(c for c in desk["connectors"] if c["channel"] == "mssante")
    assert mssante == {
        "channel": "mssante",
        "label": "MSSanté (messagerie sécurisée de santé)",
        "setting": "server",
        "setting_label": "Réglages du serveur",
        "pending": 0,
        "failed": 0,
    }


def test_the_desk_needs_a_token(client):
    response = client.get("/api/v1/me/desk")
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"


def light_statements(app, client, url: str, headers: dict) -> tuple[list[tuple[str, bool]], object]:
    """The statements of one request with whether each ran outside a transaction (PostgreSQL's autocommit, no
    SQLite transaction open), and the response; no lazy load allowed."""
    engine = app.extensions["hub.engine"]
    seen: list[tuple[str, bool]] = []

    def record(conn, _cursor, statement, *_args):
        dbapi = conn.connection.dbapi_connection
        outside = dbapi.autocommit if engine.dialect.name == "postgresql" else not dbapi.in_transaction
        seen.append((" ".join(statement.split())[:60], outside))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with forbid_lazy_loads():
            response = client.get(url, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen, response


def test_the_coordinators_desk_is_a_light_read_of_four_statements(app, committed):
    """The token's caller (one Core SELECT), the counts (the late reports' rendering and sending among them), the
    late signatures' candidates, the sessions; the ids of the first to book again only when there are some (the
    count says so; test_the_first_sessions_to_book_again_are_the_lists_first); none inside a transaction, no lazy
    load (P7). It was eight on SQLite (BEGIN IMMEDIATE first), seven on PostgreSQL, inside a transaction, the
    account's ORM rows loaded; then seven (the late reports in three statements of entities), then five."""
    factory, created = committed
    with factory() as session:
        cpts = factories.cpts(session)
        created.append(cpts.id)
        coordinator = factories.coordinator(session, cpts)
        _token, raw = accounts.create_api_token(session, coordinator, name="bureau")
        session.commit()
    client, headers = app.test_client(), {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/me/desk", headers=headers).status_code == 200  # the token's first use is stamped
    seen, response = light_statements(app, client, "/api/v1/me/desk", headers)
    assert response.status_code == 200 and response.get_json()["coordinator"]["late_reports"] == 0
    assert len(seen) == 4 and all(statement.startswith("SELECT") for statement, _ in seen), seen
    assert all(outside for _, outside in seen), seen
    assert response.get_json()["coordinator"]["to_reschedule_appointment_ids"] == []


def test_the_desk_json_is_desk_out_s_dump(app, db_session, coordination, clock):
    """Every part (coordinator, IDEL, pharmacist, GP, specialist, admin), with dates, instants, none, enums, a
    decimal and lists: desk_json gives what DeskOut dumped."""
    from workflows import desk

    t = coordination.t
    clock.shift(dt.timedelta(hours=3))
    gp = factories.clinician(db_session, t.cpts, Profession.GENERAL_PRACTITIONER)
    factories.referral(db_session, t.patient, author=gp)
    delivered_report(db_session, t, gp.professional)
    pharmacist = factories.clinician(db_session, t.cpts, Profession.PHARMACIST)
    cardiologist = factories.user(db_session, t.cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
    admin = factories.user(db_session, t.cpts, Role.ADMIN)
    past_session(db_session, t, hours_ago=72)
    due(db_session, t.cpts, LATE)  # the send backlog's instant
    db_session.commit()
    seen = set()
    for user in (t.coordinator, t.idel_user, pharmacist, gp, cardiologist, admin):
        board = desk.desk_of(db_session, user, zone=app.config["HUB"]["TIMEZONE"], now=utcnow(), with_lists=False)
        parts = parts_of(board, dt.timedelta(minutes=15))
        assert desk_json(parts) == DeskOut().dump(parts), user.login
        seen |= {name for name, part in parts.items() if part is not None}
    assert seen == {"coordinator", "idel", "pharmacist", "gp", "specialist", "admin"}


def test_the_first_sessions_to_book_again_are_the_lists_first(api_as, db_session, territory):
    """The API reads the ids alone of « À reprogrammer »'s first rows: the same sessions, in the same order, as the
    list's first FIRST (soonest first), with more of them than it shows."""
    from workflows import attendance, desk

    t = territory
    postponed = []
    for n in range(desk.FIRST + 2):
        patient = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
        starts = factories.MONDAY_14H + dt.timedelta(days=1 + n % 3, hours=-n)  # not in booking order
        postponed.append(factories.visit(db_session, t, starts, patient_row=patient))
    for visit in postponed:
        visit.state = AppointmentState.POSTPONED  # a bare row: what the performer's absence leaves
    db_session.commit()

    body = api_as(t.coordinator).get("/api/v1/me/desk").get_json()["coordinator"]

    listed = attendance.to_reschedule(db_session, t.cpts.id, now=utcnow(), limit=desk.FIRST, with_booking=False)
    assert body["to_reschedule_count"] == desk.FIRST + 2
    assert body["to_reschedule_appointment_ids"] == [item.appointment.id for item in listed]
    assert len(listed) == desk.FIRST and [item.appointment.id for item in listed] != [v.id for v in postponed[:5]]
