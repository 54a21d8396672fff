"""The CPTS's outgoing messages as the coordination follows them ("Envois"): where each one stands and, for a
document, whether its receiver acknowledged it. Only addresses, kinds and ids: never a payload."""

import datetime as dt
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Integer, Select, String, bindparam, case, func, select
from sqlalchemy.orm import Session

from hub.db import UTCDateTime, driver_rows
from hub.errors import NotFound
from hub.models import (
    AWAITING_ACKNOWLEDGEMENT_LABEL,
    LOINC_LABELS,
    OUTBOX_STATE_LABELS,
    Delivery,
    DeliveryState,
    OutboxMessage,
    OutboxState,
    RecipientRole,
    delivery_label,
    unacknowledged,
)
from hub.models.outbox import IN_FLIGHT_SQL, due_for_dispatch, due_since

PATIENT_ADDRESS_HIDDEN = "Patient (adresse masquée)"
CHANNEL_LABELS = {
    "email": "E-mail",
    "mssante": "MSSanté",
    "dmp": "DMP",
    "webhook": "Webhook",
    "sms": "SMS",
}
KIND_LABELS = {
    "reminder": "Rappel de rendez-vous",
    "escalation": "Visite non confirmée",
    "visit_offered": "Visite proposée",
    "visit_declined": "Visite refusée",
    "visit_unassigned": "Visite sans IDEL",
    "appointment_cancelled": "Rendez-vous annulé",
    "report_overdue": "Alerte : compte rendu en retard",
    "serious_adverse_event": "Alerte : événement indésirable grave",
    "satisfaction_survey": "Enquête de satisfaction",
    "referral_accepted": "Adressage accepté",
    "referral_rejected": "Adressage refusé",
    "referral_scheduled": "Adressage programmé",
    "referral_cancelled": "Adressage annulé",
    "referral_done": "Adressage réalisé",
    "teleexpertise_received": "Téléexpertise reçue",
    "teleexpertise_assigned": "Téléexpertise prise en charge",
    "teleexpertise_declined": "Téléexpertise déclinée",
    "teleexpertise_answered": "Réponse de téléexpertise",
    "teleexpertise_expired": "Téléexpertise expirée",
    "gp_patient_proposed": "Patient sans médecin traitant proposé",
    "report.signed": "Événement : compte rendu signé",
    "report.acknowledged": "Événement : compte rendu acquitté",
}
DOCUMENT_KIND_PREFIX = "document:"  # document:<LOINC>, e.g. document:85208-7


def kind_label(kind: str) -> str:
    if kind.startswith(DOCUMENT_KIND_PREFIX):
        loinc = kind.removeprefix(DOCUMENT_KIND_PREFIX)
        return LOINC_LABELS.get(loinc, f"Document {loinc}")
    return KIND_LABELS.get(kind, kind)


@dataclass(frozen=True)
class OutboxLine:
    message: "OutboxMessage | MessageRow"  # the entity for one message, its columns in a list
    delivery: "Delivery | DeliveryRow | None"

    @property
    def state_label(self) -> str:
        return OUTBOX_STATE_LABELS[self.message.state]

    @property
    def channel_label(self) -> str:
        return CHANNEL_LABELS.get(self.message.channel, self.message.channel)

    @property
    def kind_label(self) -> str:
        return kind_label(self.message.kind)

    @property
    def acknowledgement(self) -> str | None:
        """For a document: acknowledged, refused (with the receiver's code and its meaning) or not yet."""
        return acknowledgement_of(self.delivery)

    @property
    def is_to_patient(self) -> bool:
        """A patient's own address (their Mon espace santé mailbox, which holds the INS; their phone or e-mail
        for a reminder), or the DMP deposit of their document."""
        if self.delivery is not None:
            return self.delivery.recipient_role in (RecipientRole.PATIENT, RecipientRole.DMP)
        return json.loads(self.message.payload or "{}").get("recipient_kind") == "patient"

    def shown_recipient(self, may_see_patients: bool) -> str:
        """The address, except a patient's for whoever may not see patients (the admin runs the queue, not care)."""
        return self.message.recipient if may_see_patients or not self.is_to_patient else PATIENT_ADDRESS_HIDDEN

    @property
    def can_requeue(self) -> bool:
        return self.message.state is OutboxState.DEAD


def acknowledgement_of(delivery: "Delivery | DeliveryRow | None") -> str | None:
    if delivery is None:
        return None
    # A DeliveryRow holds every column the models' rules read (state, sent_at, refusal code and text).
    delivery = cast(Delivery, delivery)
    if delivery.state is DeliveryState.SENT and not unacknowledged(delivery):
        return AWAITING_ACKNOWLEDGEMENT_LABEL
    return delivery_label(delivery)


@dataclass(frozen=True, slots=True)
class MessageRow:
    """The columns of an outbox message a listed line reads (OutboxLine, the page and the API): not its entity."""

    id: int
    channel: str
    recipient: str
    kind: str
    payload: str | None  # read for a message without a delivery only (whether it goes to a patient)
    state: OutboxState
    attempts: int
    max_attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    receipt: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """The columns of a message's delivery a listed line reads (its recipient's role, its acknowledgement)."""

    id: int
    recipient_role: RecipientRole
    state: DeliveryState
    sent_at: dt.datetime | None
    refusal_code: str | None
    refusal_text: str | None


_MESSAGE_FIELDS = tuple(MessageRow.__dataclass_fields__)
_DELIVERY_FIELDS = tuple(DeliveryRow.__dataclass_fields__)


def list_messages(
    session: Session,
    cpts_id: int,
    *,
    state: OutboxState | None = None,
    channel: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[OutboxLine], int]:
    """A page of the CPTS's messages, newest first, each with its document delivery if it carries one, and the
    total: one query whatever the page size (two for a page past the end, which has no row to carry the total). The
    page's ids are found first, on the (cpts_id, id) index alone, and only their rows read: a page far down the
    list (thousands of messages) neither reads nor sorts the others. The lines hold the columns they show
    (MessageRow, DeliveryRow), read by the driver from statements built once per filter: entities and statements
    built per request were most of the list's CPU (P7)."""
    count, rows_of_page = _list_statements(state is not None, bool(channel))
    parameters = {"cpts_id": cpts_id, "state": state, "channel": channel}
    rows = driver_rows(session, rows_of_page, parameters | {"limit": per_page, "offset": (page - 1) * per_page})
    if not rows:
        return [], driver_rows(session, count, parameters)[0][0] if page > 1 else 0
    split = len(_MESSAGE_FIELDS)
    return [
        OutboxLine(MessageRow(*row[:split]), DeliveryRow(*row[split:-1]) if row[split] is not None else None)
        for row in rows
    ], rows[0].total


@functools.cache
def _list_statements(by_state: bool, by_channel: bool) -> tuple[Select, Select]:
    conditions = [OutboxMessage.cpts_id == bindparam("cpts_id", type_=Integer)]
    if by_state:
        conditions.append(OutboxMessage.state == bindparam("state", type_=OutboxMessage.state.type))
    if by_channel:
        conditions.append(OutboxMessage.channel == bindparam("channel", type_=String))
    count = select(func.count().label("total")).select_from(OutboxMessage).where(*conditions)
    page_ids = (
        select(OutboxMessage.id)
        .where(*conditions)
        .order_by(OutboxMessage.id.desc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )
    columns = [getattr(OutboxMessage, name).label(name) for name in _MESSAGE_FIELDS if name != "payload"]
    columns.insert(
        _MESSAGE_FIELDS.index("payload"), case((Delivery.id.is_(None), OutboxMessage.payload)).label("payload")
    )
    columns += [getattr(Delivery, name).label(f"delivery_{name}") for name in _DELIVERY_FIELDS]
    # The total as the page's last column: computed once (nothing in it refers to the page's row).
    columns.append(count.correlate(None).scalar_subquery().label("total"))
    rows = (
        select(*columns)
        .outerjoin(Delivery, Delivery.outbox_message_id == OutboxMessage.id)
        .where(OutboxMessage.id.in_(page_ids.scalar_subquery()))
        .order_by(OutboxMessage.id.desc())
    )
    return count, rows


def get_message(session: Session, cpts_id: int, message_id: int) -> OutboxLine:
    """One message of the CPTS; another CPTS's, or none, is "not found"."""
    row = session.execute(
        select(OutboxMessage, Delivery)
        .outerjoin(Delivery, Delivery.outbox_message_id == OutboxMessage.id)
        .where(OutboxMessage.id == message_id, OutboxMessage.cpts_id == cpts_id)
    ).first()
    if row is None:
        raise NotFound("Message introuvable.")
    return OutboxLine(*row)


@dataclass(frozen=True, slots=True)
class Backlog:
    """The messages due that no dispatcher has taken yet: how many, and since when the oldest waits. A running worker
    keeps it near nothing; an old one means the worker is behind (it runs niced below the web processes, so an
    overload slows it first) or stopped. The messages wait, they are not lost. A message waiting for its retry, for
    its connector's settings or for the earlier version of its group is on time, and not counted."""

    waiting: int
    oldest_due_at: dt.datetime | None
    now: dt.datetime

    @property
    def age(self) -> dt.timedelta:
        if self.oldest_due_at is None:
            return dt.timedelta(0)
        return max(self.now - self.oldest_due_at, dt.timedelta(0))

    def is_late(self, alert_after: dt.timedelta) -> bool:
        return self.waiting > 0 and self.age > alert_after


def alert_after(config: Mapping[str, Any]) -> dt.timedelta:
    """How long the oldest due message may wait before the hub warns (HUB_OUTBOX_ALERT_MINUTES)."""
    return dt.timedelta(minutes=config["OUTBOX_ALERT_MINUTES"])


def backlog_query(cpts_id: ColumnElement[int] | None, now: ColumnElement[dt.datetime]) -> Select:
    """(how many messages wait, since when the oldest waits) of one CPTS, or of the whole hub with `cpts_id` None: one
    row. A CPTS's reads its in-flight rows alone, from their partial index (ix_outbox_messages_cpts_in_flight)."""
    conditions: list[Any] = [IN_FLIGHT_SQL, due_for_dispatch(now)]
    if cpts_id is not None:
        conditions.insert(0, OutboxMessage.cpts_id == cpts_id)
    return select(func.count(OutboxMessage.id), func.min(due_since())).where(*conditions)


def backlog(session: Session, cpts_id: int | None, *, now: dt.datetime) -> Backlog:
    """The backlog of one CPTS, or of the whole hub (`cpts_id` None: every CPTS's messages and the server's own)."""
    waiting, oldest = driver_rows(session, _backlog_statement(cpts_id is not None), {"cpts_id": cpts_id, "now": now})[0]
    return Backlog(waiting or 0, oldest, now)


@functools.cache
def _backlog_statement(per_cpts: bool) -> Select:
    cpts_id = bindparam("cpts_id", type_=Integer) if per_cpts else None
    return backlog_query(cpts_id, bindparam("now", type_=UTCDateTime))
