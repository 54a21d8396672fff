"""Business events sent to a CPTS's own systems by webhook (connectors.webhooks): a report signed or
acknowledged, a téléexpertise answered, a referral scheduled.

A CPTS subscribes by giving its admin-set webhook channel a URL (`WEBHOOK_URL` in its connector settings).
The event is an outbox message written in the caller's transaction, so it leaves only if the change is
committed (R1). It carries ids and the event's name, never health data: the receiver comes back to the API,
behind its token, for anything more.
"""

import datetime as dt
import json
from enum import Enum, auto

from sqlalchemy import ScalarSelect, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from connectors import outbox
from hub.db import utcnow
from hub.models import ConnectorSetting, OutboxMessage

CHANNEL = "webhook"


class Unread(Enum):
    """emit's `settings` when the caller has not read them: emit reads them."""

    UNREAD = auto()


UNREAD = Unread.UNREAD


def subscriber_settings(cpts_id: ColumnElement[int] | int) -> ScalarSelect:
    """The enabled webhook channel's settings (JSON text) of the CPTS, NULL without one: a column a caller adds
    to a statement it makes anyway, then gives to emit, which does not read them again. Read in the caller's
    transaction, never cached: a coordinator's change in another process counts from its commit on."""
    return (
        select(ConnectorSetting.settings)
        .where(
            ConnectorSetting.cpts_id == cpts_id,
            ConnectorSetting.channel == CHANNEL,
            ConnectorSetting.is_enabled.is_(True),
        )
        .scalar_subquery()
    )


def subscriber_url(session: Session, cpts_id: int) -> str | None:
    return url_of(session.scalar(select(subscriber_settings(cpts_id))))


def url_of(settings: str | None) -> str | None:
    """The subscriber's URL in the channel's settings (subscriber_settings), if it is one the hub calls."""
    if settings is None:
        return None
    url = (json.loads(settings or "{}").get("WEBHOOK_URL") or "").strip()
    return url if url.startswith("https://") else None


def emit(
    session: Session,
    *,
    cpts_id: int,
    event: str,
    key: str,
    data: dict,
    now: dt.datetime | None = None,
    settings: str | Unread | None = UNREAD,
) -> OutboxMessage | None:
    """Queue `event` for the CPTS's subscriber, once per (event, key); nothing when it has none. `settings`: the
    CPTS's subscriber_settings as the caller read them in this transaction."""
    url = subscriber_url(session, cpts_id) if settings is UNREAD else url_of(settings)
    if url is None:
        return None
    return outbox.enqueue(
        session,
        channel=CHANNEL,
        recipient=url,
        kind=event,
        payload={"type": event, "timestamp": (now or utcnow()).isoformat(), "data": data},
        idempotency_key=f"webhook:{event}:{key}",
        cpts_id=cpts_id,
    )
