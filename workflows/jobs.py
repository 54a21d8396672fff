"""The periodic jobs of the workflows. `scheduling` sits below `workflows` in the import contract and cannot
list them: `hub worker` runs `scheduling.periodic.PERIODIC_JOBS + WORKFLOW_JOBS`.

Each job is a PeriodicJob (scheduling.periodic): run(context, *, now) in its own session scopes, idempotent, and
recorded once per period by the runner (scheduling.runner.run_periodic).
"""

import datetime as dt

from hub.db import session_scope
from scheduling.periodic import JobContext, PeriodicJob, local_hour
from workflows import reports, teleexpertise


def expire_teleexpertise(ctx: JobContext, *, now: dt.datetime) -> str:
    """Téléexpertise requests still unanswered past their deadline become `expired`."""
    return teleexpertise.expire_overdue(ctx.session_factory, now)


def alert_overdue_reports(ctx: JobContext, *, now: dt.datetime) -> str:
    """Reports not signed or not sent within their delay: one e-mail per late item to each coordinator."""
    with session_scope(ctx.session_factory) as session:
        queued = reports.alert_overdue(session, now=now)
    return f"{queued} alerte(s) de compte rendu en retard"


WORKFLOW_JOBS: list[PeriodicJob] = [
    PeriodicJob("alert_overdue_reports", "15 * * * *", alert_overdue_reports, local_hour),
    PeriodicJob("expire_teleexpertise", "5 * * * *", expire_teleexpertise, local_hour),
]
