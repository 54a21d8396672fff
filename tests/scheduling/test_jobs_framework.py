"""The periodic job framework: once per period (the JobRun key), once on both daylight-saving days (T8),
catch-up of a missed fire. The jobs themselves are tested in tests/workflows/test_jobs.py."""

import dataclasses
import datetime as dt
import threading
import uuid
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import delete, func, select

from hub.models import JobRun
from scheduling.periodic import PeriodicJob, cron_trigger, local_day, local_hour, ten_minutes
from scheduling.runner import fire_periodic, last_fire_time, run_periodic

PARIS = ZoneInfo("Europe/Paris")
MONDAY_18H = dt.datetime(2026, 11, 16, 18, 0, tzinfo=PARIS)


def recording(job: PeriodicJob) -> tuple[PeriodicJob, list[dt.datetime]]:
    runs: list[dt.datetime] = []

    def record(context, *, now):
        runs.append(now)
        return "ok"

    return dataclasses.replace(job, name=f"{job.name}-{uuid.uuid4().hex[:8]}", run=record), runs


def fire_times(job: PeriodicJob, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """What APScheduler's CronTrigger would fire, in order, between two instants."""
    trigger, previous, cursor, fires = job.trigger(PARIS), None, start, []
    while (fire := trigger.get_next_fire_time(previous, cursor)) is not None and fire <= end:
        fires.append(fire)
        previous = cursor = fire
    return fires


# --- once per period -----------------------------------------------------------------------------------


def test_a_period_runs_once_and_a_failure_is_recorded(db_session, sessions):
    job = f"job-{uuid.uuid4().hex[:8]}"
    calls = []
    assert run_periodic(sessions, job, "2026-03-29", lambda: calls.append(1) or "3 rappels", worker="w1")
    assert not run_periodic(sessions, job, "2026-03-29", lambda: calls.append(2), worker="w2")
    assert calls == [1]

    with pytest.raises(ZeroDivisionError):
        run_periodic(sessions, job, "2026-03-30", lambda: 1 / 0, worker="w1")
    assert not run_periodic(sessions, job, "2026-03-30", lambda: calls.append(3), worker="w1")
    rows = db_session.scalars(select(JobRun).where(JobRun.job == job).order_by(JobRun.period)).all()
    assert [(r.period, r.worker, r.outcome) for r in rows] == [
        ("2026-03-29", "w1", "3 rappels"),
        ("2026-03-30", "w1", "échec (ZeroDivisionError)"),
    ]
    assert all(r.finished_at is not None for r in rows)


@pytest.mark.concurrency
def test_two_schedulers_by_mistake_do_the_work_once(committed):
    factory, _ = committed
    job = f"job-{uuid.uuid4().hex[:8]}"
    barrier = threading.Barrier(6)
    ran, errors = [], []

    def scheduler(n):
        barrier.wait()
        try:
            run_periodic(factory, job, "2026-10-25", lambda: ran.append(n), worker=f"w{n}")
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=scheduler, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with factory() as session:
        rows = session.scalar(select(func.count()).where(JobRun.job == job))
        session.execute(delete(JobRun).where(JobRun.job == job))
        session.commit()
    assert errors == []
    assert len(ran) == 1
    assert rows == 1


def test_a_new_leader_catches_up_a_missed_fire_within_the_grace_only(sessions, context):
    reminders = PeriodicJob("reminders", "0 18 * * *", None, local_day, grace=dt.timedelta(hours=5))
    job, runs = recording(reminders)
    assert not fire_periodic(sessions, job, context, now=MONDAY_18H - dt.timedelta(minutes=1))  # Sunday's is too old
    assert fire_periodic(sessions, job, context, now=MONDAY_18H + dt.timedelta(minutes=30))  # the leader died at 17:59
    assert not fire_periodic(sessions, job, context, now=MONDAY_18H + dt.timedelta(hours=1))  # done for this period
    assert len(runs) == 1

    late, late_runs = recording(reminders)
    assert not fire_periodic(sessions, late, context, now=MONDAY_18H + dt.timedelta(hours=5, minutes=1))
    assert late_runs == []


def test_last_fire_time_sees_both_fires_of_a_repeated_wall_time():
    trigger = cron_trigger("30 2 * * *", PARIS)
    first = dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)  # 02:30 CEST
    second = dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC)  # 02:30 CET
    assert last_fire_time(trigger, first, lookback=dt.timedelta(hours=2)) == first
    assert last_fire_time(trigger, second - dt.timedelta(seconds=1), lookback=dt.timedelta(hours=2)) == first
    assert last_fire_time(trigger, second + dt.timedelta(minutes=5), lookback=dt.timedelta(hours=2)) == second
    assert last_fire_time(trigger, first - dt.timedelta(seconds=1), lookback=dt.timedelta(hours=2)) is None


def test_period_keys():
    winter = dt.datetime(2026, 10, 25, 1, 0, tzinfo=dt.UTC)
    summer = dt.datetime(2026, 10, 25, 0, 0, tzinfo=dt.UTC)
    assert local_day(summer, PARIS) == local_day(winter, PARIS) == "2026-10-25"
    assert (local_hour(summer, PARIS), local_hour(winter, PARIS)) == ("2026-10-25T02+02:00", "2026-10-25T02+01:00")
    assert ten_minutes(winter + dt.timedelta(minutes=19, seconds=59), PARIS) == "2026-10-25T02:10+01:00"
    with pytest.raises(ValueError, match="five or six"):
        cron_trigger("0 18 * *", PARIS)


# --- T8 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change_day", "fires_that_day"),
    [(dt.date(2026, 3, 29), ["01:30"]), (dt.date(2026, 10, 25), ["00:30", "01:30"])],
    ids=["23-hour day", "25-hour day"],
)
def test_t8_a_job_at_0230_local_runs_once_on_both_change_days(sessions, context, change_day, fires_that_day):
    job, runs = recording(PeriodicJob("t8", "30 2 * * *", None, local_day))
    midnight = dt.datetime.combine(change_day, dt.time(), tzinfo=PARIS)
    fires = fire_times(job, midnight - dt.timedelta(days=2), midnight + dt.timedelta(days=3))
    for fire in fires:
        with time_machine.travel(fire, tick=False):
            fire_periodic(sessions, job, context)

    on_the_day = [f.astimezone(dt.UTC).strftime("%H:%M") for f in fires if f.astimezone(PARIS).date() == change_day]
    assert on_the_day == fires_that_day  # 02:30 does not exist in March (03:30 CEST), happens twice in October
    ran_on = Counter(now.astimezone(PARIS).date() for now in runs)
    assert ran_on == {midnight.date() + dt.timedelta(days=d): 1 for d in range(-2, 3)}
