"""The periodic job framework: what a job is (a name, a cron in local time, a function, a period key), the
period keys, and the context a job runs in. The jobs themselves are business rules and live in
workflows.jobs; the runner (scheduling.runner) fires them from APScheduler in the one worker that holds the
scheduler lease, and records each run under a unique (job, period) key.

Jobs are written in the territory's wall time (`0 18 * * *` is 18:00 in the configured zone) and keyed by a
local period (the local date for a daily job), so that a job fires once on both daylight-saving days:
a time that does not exist in March runs an hour later, and a time that happens twice in October
runs once (T8).
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.orm import Session, sessionmaker


@dataclass(frozen=True)
class JobContext:
    """What a job needs from the deployment: the database and the territory's zone."""

    session_factory: sessionmaker[Session]
    zone: ZoneInfo


# --- period keys: the unit of "once" -------------------------------------------------------------------


def local_day(fire_time: dt.datetime, zone: ZoneInfo) -> str:
    """`2026-10-25`: both 02:30 fires of the 25-hour day are one period."""
    return fire_time.astimezone(zone).date().isoformat()


def local_hour(fire_time: dt.datetime, zone: ZoneInfo) -> str:
    """`2026-10-25T02+01:00`: the repeated 02:00 hour of the 25-hour day is a distinct hour."""
    return fire_time.astimezone(zone).replace(minute=0, second=0, microsecond=0).isoformat(timespec="hours")


def ten_minutes(fire_time: dt.datetime, zone: ZoneInfo) -> str:
    local = fire_time.astimezone(zone)
    return local.replace(minute=local.minute - local.minute % 10, second=0, microsecond=0).isoformat(timespec="minutes")


def utc_second(fire_time: dt.datetime, zone: ZoneInfo) -> str:
    return fire_time.astimezone(dt.UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class PeriodicJob:
    """A job, when it fires (crontab fields in local time; six fields put seconds first), what it does,
    and how a fire time maps to the period it runs once for. A worker that takes over within `grace`
    after a fire it missed runs it then (scheduling.runner.fire_periodic)."""

    name: str
    cron: str
    run: Callable[..., str | None]  # run(context, *, now) -> a short outcome for the JobRun row
    period_key: Callable[[dt.datetime, ZoneInfo], str]
    grace: dt.timedelta = field(default=dt.timedelta(hours=1))

    def trigger(self, zone: ZoneInfo) -> CronTrigger:
        return cron_trigger(self.cron, zone)


def cron_trigger(spec: str, zone: ZoneInfo) -> CronTrigger:
    fields = spec.split()
    if len(fields) == 5:
        return CronTrigger.from_crontab(spec, timezone=zone)
    if len(fields) == 6:
        names = ("second", "minute", "hour", "day", "month", "day_of_week")
        return CronTrigger(timezone=zone, **dict(zip(names, fields, strict=True)))
    raise ValueError(f"cron spec {spec!r}: five or six fields expected")
