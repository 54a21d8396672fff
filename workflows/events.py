"""Business events sent to a CPTS's own systems by webhook (connectors.webhooks): a report signed or
acknowledged, a téléexpertise answered, a referral scheduled.

A CPTS subscribes by giving its admin-set webhook channel a URL (`WEBHOOK_URL` in its connector settings).
The event is an outbox message written in the caller's transaction, so it leaves only if the change is
committed (R1). It carries ids and the event's name, never health data: the receiver comes back to the API,
behind its token, for anything more.
"""

import datetime as dt
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors import outbox
from hub.db import utcnow
from hub.models import ConnectorSetting, OutboxMessage

CHANNEL = "webhook"


def subscriber_url(session: Session, cpts_id: int) -> str | None:
    row = session.scalar(
        select(ConnectorSetting).where(ConnectorSetting.cpts_id == cpts_id, ConnectorSetting.channel == CHANNEL)
    )
    if row is None or not row.is_enabled:
        return None
    url = (json.loads(row.settings or "{}").get("WEBHOOK_URL") or "").strip()
    return url if url.startswith("https://") else None


def emit(
    session: Session, *, cpts_id: int, event: str, key: str, data: dict, now: dt.datetime | None = None
) -> OutboxMessage | None:
    """Queue `event` for the CPTS's subscriber, once per (event, key); nothing when it has none."""
    url = subscriber_url(session, cpts_id)
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
