"""What ends with a session. The appointment is done (workflows.appointments.complete), then the referral
it was booked for, if any (workflows.referrals.done_for_appointment), and, for a remote session, the patient's
satisfaction survey is sent (workflows.surveys). Each workflow keeps its own verb;
this module sits above both so that appointments need not know what builds on them. Pages, the API and
the demo complete a session here."""

import datetime as dt

from sqlalchemy.orm import Session

from hub.models import Actor, Appointment
from workflows import appointments, referrals, surveys


def complete(
    session: Session,
    actor: Actor,
    appointment: Appointment,
    *,
    now: dt.datetime | None = None,
) -> None:
    appointments.complete(session, actor, appointment, now=now)
    referrals.done_for_appointment(session, actor, appointment)
    surveys.invite(session, appointment, now=now)
