"""The periodic jobs on the real database: slot horizon, reminders, escalation, expiry of the own-IDEL-first
delay, purge of short-lived rows; and every job of the worker's list once per period on both
daylight-saving days (T8). The téléexpertise deadline job is tested in test_teleexpertise.py."""

import dataclasses
import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import func, select

from hub.models import (
    Appointment,
    AppointmentState,
    OutboxMessage,
    PlaceKind,
    Profession,
    Role,
    Slot,
    VisitOffer,
    VisitOfferState,
)
from scheduling.runner import fire_periodic
from tests import factories
from tests.scheduling.test_jobs_framework import fire_times, recording
from workflows import appointments, jobs, video
from workflows.jobs import PERIODIC_JOBS

PARIS = ZoneInfo("Europe/Paris")
MONDAY_9H = dt.datetime(2026, 11, 16, 9, 0, tzinfo=PARIS)
MONDAY_18H = dt.datetime(2026, 11, 16, 18, 0, tzinfo=PARIS)
TUESDAY_14H = dt.datetime(2026, 11, 17, 14, 0, tzinfo=PARIS)


# --- T8 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change_day", [dt.date(2026, 3, 29), dt.date(2026, 10, 25)])
@pytest.mark.parametrize("job", PERIODIC_JOBS, ids=[job.name for job in PERIODIC_JOBS])
def test_t8_every_periodic_job_runs_once_per_period_on_the_change_days(sessions, context, job, change_day):
    job, runs = recording(job)
    start = dt.datetime.combine(change_day, dt.time(), tzinfo=PARIS)
    end = dt.datetime.combine(change_day + dt.timedelta(days=1), dt.time(), tzinfo=PARIS) - dt.timedelta(seconds=1)
    for fire in fire_times(job, start.astimezone(dt.UTC), end.astimezone(dt.UTC)):
        with time_machine.travel(fire, tick=False):
            fire_periodic(sessions, job, context)

    hours = round((end.astimezone(dt.UTC) - start.astimezone(dt.UTC)).total_seconds() / 3600)  # 23 or 25
    expected = {
        "roll_slot_horizon": 1,
        "send_reminders": 1,
        "send_video_links": 1,
        "purge_expired_rows": 1,
        "escalate_unconfirmed": hours,
        "alert_overdue_reports": hours,
        "expire_teleexpertise": hours,
    }
    assert len(runs) == expected.get(job.name.rsplit("-", 1)[0], hours * 6)
    assert len(runs) == len(set(runs))


# --- the jobs ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class World:
    cpts: object
    coordinator: object
    idel: object
    other_idel: object
    patient: object
    program: object


@pytest.fixture
def world(db_session, cpts) -> World:
    coordinator = factories.coordinator(db_session, cpts, email="coord@example.org")
    factories.coordinator(db_session, cpts)
    elsewhere = factories.cpts(db_session)
    factories.coordinator(db_session, elsewhere, email="x@example.org")
    idel, other = (
        factories.professional(
            db_session, cpts, Profession.NURSE, commune_insee="24571", accompanies_teleconsultation=True, email=email
        )
        for email in ("idel@example.org", "idel2@example.org")
    )
    patient = factories.consenting_patient(
        db_session, cpts, recorded_by=coordinator, commune_insee="24571", phone="0612345678"
    )
    factories.in_care_team(db_session, patient, idel)
    return World(cpts, coordinator, idel, other, patient, factories.program(db_session, cpts))


def book(db_session, world, start, *, patient=None, confirm=False) -> Appointment:
    """Book through the real workflow; the patient's own IDEL is asked first (and confirms, if told)."""
    now = min(MONDAY_9H, start - dt.timedelta(days=1))
    slot = factories.slot(db_session, world.program, start.astimezone(dt.UTC))
    appointment = appointments.book(
        db_session,
        world.coordinator,
        slot=slot,
        patient=patient or world.patient,
        place_kind=PlaceKind.DEDICATED_PLACE,
        now=now,
    )
    if confirm:
        appointments.confirm(db_session, world.coordinator, appointment, now=now)
    db_session.commit()
    return appointment


def another_patient(db_session, world, **traits):
    patient = factories.consenting_patient(db_session, world.cpts, recorded_by=world.coordinator, **traits)
    factories.in_care_team(db_session, patient, world.idel)
    return patient


def queued(db_session, kind: str) -> list[OutboxMessage]:
    db_session.expire_all()
    return db_session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)).all()


def test_roll_slot_horizon_fills_the_horizon_once(db_session, context, world):
    paused = factories.program(db_session, world.cpts, is_active=False)
    db_session.commit()

    outcome = jobs.roll_slot_horizon(context, now=MONDAY_9H.astimezone(dt.UTC))

    def slots(program):
        return db_session.scalar(select(func.count()).where(Slot.program_id == program.id))

    assert slots(world.program) == 12 * 3  # twelve Mondays ahead, three slots each
    assert slots(paused) == 0
    assert "0 échec(s)" in outcome
    jobs.roll_slot_horizon(context, now=MONDAY_9H.astimezone(dt.UTC))
    assert slots(world.program) == 12 * 3


def test_reminders_go_the_day_before_to_the_idel_and_the_patient_without_health_data(db_session, context, world):
    email_only = another_patient(db_session, world, email="patient@example.org")
    tomorrow = book(db_session, world, TUESDAY_14H, confirm=True)
    by_email = book(db_session, world, TUESDAY_14H + dt.timedelta(hours=2), patient=email_only, confirm=True)
    proposed = another_patient(db_session, world, phone="0600000000")
    book(db_session, world, TUESDAY_14H + dt.timedelta(hours=4), patient=proposed)  # not confirmed: no reminder
    book(db_session, world, TUESDAY_14H + dt.timedelta(days=1), confirm=True)  # the day after: not yet

    jobs.send_reminders(context, now=MONDAY_18H)

    sent = {(m.idempotency_key, m.channel, m.recipient) for m in queued(db_session, "reminder")}
    assert sent == {
        (f"reminder:{tomorrow.id}:idel:2026-11-17", "email", "idel@example.org"),
        (f"reminder:{tomorrow.id}:patient:2026-11-17", "sms", "0612345678"),
        (f"reminder:{by_email.id}:idel:2026-11-17", "email", "idel@example.org"),
        (f"reminder:{by_email.id}:patient:2026-11-17", "email", "patient@example.org"),
    }
    payload = json.loads(next(m.payload for m in queued(db_session, "reminder") if m.channel == "sms"))
    assert payload == {  # the IDEL comes 20 minutes before the cardiologist's 14:00
        "appointment_id": tomorrow.id,
        "local_date": "2026-11-17",
        "local_time": "13:40",
        "recipient_kind": "patient",
    }
    assert {m.cpts_id for m in queued(db_session, "reminder")} == {world.cpts.id}

    assert jobs.send_reminders(context, now=MONDAY_18H + dt.timedelta(hours=1)).startswith("0 rappel")
    assert len(queued(db_session, "reminder")) == 4


def test_reminders_cover_the_whole_local_day_on_the_23_hour_day(db_session, context, world):
    late = book(db_session, world, dt.datetime(2026, 3, 29, 23, 50, tzinfo=PARIS), confirm=True)
    book(db_session, world, dt.datetime(2026, 3, 30, 0, 50, tzinfo=PARIS), confirm=True)
    jobs.send_reminders(context, now=dt.datetime(2026, 3, 28, 18, 0, tzinfo=PARIS))
    assert {json.loads(m.payload)["appointment_id"] for m in queued(db_session, "reminder")} == {late.id}


def test_escalation_of_visits_unconfirmed_48_hours_before(db_session, context, world):
    unconfirmed = book(db_session, world, TUESDAY_14H)
    book(
        db_session, world, TUESDAY_14H + dt.timedelta(hours=2), confirm=True, patient=another_patient(db_session, world)
    )
    book(db_session, world, TUESDAY_14H + dt.timedelta(days=3))  # still time

    jobs.escalate_unconfirmed(context, now=MONDAY_18H)
    jobs.escalate_unconfirmed(context, now=MONDAY_18H + dt.timedelta(hours=1))

    coordinator = world.coordinator.professional
    alerts = [(m.idempotency_key, m.recipient, m.cpts_id) for m in queued(db_session, "escalation")]
    assert alerts == [(f"escalation:{unconfirmed.id}:{coordinator.id}", "coord@example.org", world.cpts.id)]


def test_the_own_idel_delay_expires_into_an_offer_to_the_other_idels_once(db_session, context, world):
    appointment = book(db_session, world, TUESDAY_14H)
    [own_offer] = db_session.scalars(select(VisitOffer).where(VisitOffer.appointment_id == appointment.id)).all()
    assert own_offer.expires_at == dt.datetime(2026, 11, 16, 11, 0, tzinfo=PARIS)  # two office hours

    assert jobs.expire_own_idel_delay(context, now=own_offer.expires_at - dt.timedelta(minutes=1)).startswith("0 ")
    outcome = jobs.expire_own_idel_delay(context, now=own_offer.expires_at + dt.timedelta(minutes=1))
    assert outcome.startswith("1 ")
    assert jobs.expire_own_idel_delay(context, now=own_offer.expires_at + dt.timedelta(minutes=11)).startswith("0 ")

    db_session.expire_all()
    offers = db_session.scalars(select(VisitOffer).where(VisitOffer.appointment_id == appointment.id)).all()
    assert {(o.professional_id, o.round, o.state) for o in offers} == {
        (world.idel.id, 1, VisitOfferState.PENDING),  # the own IDEL may still accept
        (world.other_idel.id, 2, VisitOfferState.PENDING),
    }
    appointment = db_session.get(Appointment, appointment.id)
    assert (appointment.state, appointment.accompanying_id) == (AppointmentState.PROPOSED, None)
    assert [m.recipient for m in queued(db_session, "visit_offered")] == ["idel@example.org", "idel2@example.org"]


def test_purge_removes_only_rows_past_their_retention(db_session, context, cpts):
    from hub.models import IdempotentRequest, LoginAttempt, UserSession

    now = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
    user = factories.user(db_session, cpts, Role.COORDINATOR)
    db_session.add_all(
        [
            IdempotentRequest(
                user_id=user.id,
                key="old",
                request_hash="h",
                status=201,
                body="{}",
                created_at=now - dt.timedelta(days=8),
            ),
            IdempotentRequest(
                user_id=user.id,
                key="new",
                request_hash="h",
                status=201,
                body="{}",
                created_at=now - dt.timedelta(days=1),
            ),
            LoginAttempt(login="purge", ip="1", succeeded=False, attempted_at=now - dt.timedelta(days=3)),
            LoginAttempt(login="purge", ip="1", succeeded=False, attempted_at=now - dt.timedelta(minutes=5)),
            UserSession(id="ended-long-ago", user_id=user.id, ended_at=now - dt.timedelta(days=31)),
            UserSession(id="live", user_id=user.id),
        ]
    )
    db_session.commit()
    assert jobs.purge_expired_rows(context, now=now).startswith("1 réponse")
    assert {r.key for r in db_session.query(IdempotentRequest).filter_by(user_id=user.id)} == {"new"}
    assert db_session.query(LoginAttempt).filter_by(login="purge").count() == 1
    assert {s.id for s in db_session.query(UserSession).filter_by(user_id=user.id)} == {"live"}


def test_the_day_before_each_patient_gets_their_video_link_once(db_session, context, world):
    world.program.video_url_template = "https://visio.example.fr/salle/{room}"
    tomorrow = book(db_session, world, TUESDAY_14H, confirm=True)
    reachable = another_patient(db_session, world, phone="0611111111")
    already = book(db_session, world, TUESDAY_14H + dt.timedelta(hours=2), patient=reachable)
    appointments.confirm(db_session, world.coordinator, already, now=MONDAY_9H)
    video.send_patient_link(db_session, world.coordinator, already, now=MONDAY_9H)
    unreachable = another_patient(db_session, world, phone=None)
    book(db_session, world, TUESDAY_14H + dt.timedelta(hours=4), patient=unreachable, confirm=True)
    book(db_session, world, TUESDAY_14H + dt.timedelta(days=1), confirm=True)  # the day after: not yet
    db_session.commit()

    assert jobs.send_video_links(context, now=MONDAY_18H) == "1 lien(s) de visio envoyé(s) pour le 2026-11-17"
    links = queued(db_session, video.KIND)
    sent_for = [int(m.idempotency_key.split(":")[1]) for m in links]
    assert sent_for == [already.id, tomorrow.id], "the person's send in the morning, then the job's"
    assert (links[1].recipient, json.loads(links[1].payload)["local_time"]) == ("0612345678", "14:00")
    assert jobs.send_video_links(context, now=MONDAY_18H + dt.timedelta(hours=1)).startswith("0 lien")
