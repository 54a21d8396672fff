"""The periodic jobs of the workflows. `scheduling` sits below `workflows` in the import contract and cannot
list them: `hub worker` runs `scheduling.jobs.PERIODIC_JOBS + WORKFLOW_JOBS`.

Each job is a PeriodicJob (scheduling.jobs): run(context, *, now) in its own session scopes, idempotent, and
recorded once per period by the runner (scheduling.runner.run_periodic).
"""

import datetime as dt

from scheduling.jobs import JobContext, PeriodicJob, local_hour
from workflows import teleexpertise


def expire_teleexpertise(ctx: JobContext, *, now: dt.datetime) -> str:
    """Téléexpertise requests still unanswered past their deadline become `expired`."""
    return teleexpertise.expire_overdue(ctx.session_factory, now)


WORKFLOW_JOBS: list[PeriodicJob] = [
    PeriodicJob("expire_teleexpertise", "5 * * * *", expire_teleexpertise, local_hour),
]
