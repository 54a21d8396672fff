"""Documents leaving the hub: a clinical document frozen by hub.documents, one delivery per recipient
(written with its outbox message in the caller's transaction), and the receivers' answers coming back.

A delivery follows its outbox message: `queued` until the dispatcher has sent it, then `sent`; an MSSanté
delivery becomes `acknowledged` or `refused` when the receiver's MDN is read back; a DMP deposit is
acknowledged by the DMP's own answer, so it is acknowledged once sent. A dead message makes its delivery
`failed`, shown to the coordinator, who may re-queue it.
"""

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, and_, case, insert, literal, null, or_, select, update
from sqlalchemy.orm import Session

from connectors import mdn, outbox
from connectors.base import TransientError
from connectors.mssante import mdn_token
from hub import audit
from hub.db import rows_changed, session_scope, utcnow
from hub.documents.clinical import DocumentPackage
from hub.documents.identity import ins_for_sending
from hub.models import (
    MDN_REQUEST_CODES,
    ConsentKind,
    Delivery,
    DeliveryState,
    OutboxMessage,
    OutboxState,
    Patient,
    Professional,
    RecipientRole,
    Report,
    ReportState,
    awaiting_rendering,
)
from hub.services.identity import has_valid_consent
from workflows import events

log = logging.getLogger(__name__)
# Mon espace santé: a patient with a qualified INS has the mailbox <INS>@patient.mssante.fr.
PATIENT_MAILBOX_DOMAIN = "patient.mssante.fr"
DMP_ADDRESS = "dmp"
SETTLED = (DeliveryState.SENT, DeliveryState.ACKNOWLEDGED, DeliveryState.REFUSED)


def queue_delivery(
    session: Session,
    *,
    package: DocumentPackage,
    cpts_id: int,
    role: RecipientRole,
    address: str,
    channel: str,
    due_at: dt.datetime,
    professional: Professional | None = None,
    report: Report | None = None,
    teleexpertise_request=None,
    group_key: str | None = None,
) -> Delivery:
    """One document to one recipient: the outbox message and its delivery row, in the caller's transaction.
    The key names the document version and the recipient, so a version reaches a mailbox once (R1, R2)."""
    key = f"doc:{package.document.document_uid}:{channel}:{address.lower()}"
    message = outbox.enqueue(
        session,
        channel=channel,
        recipient=address,
        kind=f"document:{package.document.loinc}",
        payload=package.to_payload() | {"recipient_role": role.value},
        idempotency_key=key,
        cpts_id=cpts_id,
        group_key=group_key,
    )
    session.flush()
    delivery = Delivery(
        cpts_id=cpts_id,
        report_id=report.id if report is not None else None,
        teleexpertise_request_id=teleexpertise_request.id if teleexpertise_request is not None else None,
        recipient_role=role,
        recipient_professional_id=professional.id if professional is not None else None,
        channel=channel,
        address=address,
        outbox_message_id=message.id,
        message_id=mdn_token(key) if channel == "mssante" else None,
        due_at=due_at,
    )
    session.add(delivery)
    return delivery


@dataclass(frozen=True)
class Target:
    """One recipient of a document as routing knows it: no ORM object needed."""

    role: RecipientRole
    address: str
    channel: str
    due_at: dt.datetime
    professional_id: int | None = None


def queue_deliveries(
    session: Session,
    *,
    package: DocumentPackage,
    cpts_id: int,
    targets: list[Target],
    report_id: int,
    group_key: str,
) -> int:
    """queue_delivery for each target, the same rows, in two multi-row INSERTs (the messages, RETURNING their
    ids in order, then the deliveries) whatever the number of recipients: the worker's routing of a rendered report.
    The package's payload is made once."""
    if not targets:
        return 0
    payload = package.to_payload()
    keys = [f"doc:{package.document.document_uid}:{t.channel}:{t.address.lower()}" for t in targets]
    kind = f"document:{package.document.loinc}"
    messages = [
        outbox.message_row(
            channel=t.channel,
            recipient=t.address,
            kind=kind,
            payload=payload | {"recipient_role": t.role.value},
            idempotency_key=key,
            cpts_id=cpts_id,
            group_key=group_key,
        )
        for t, key in zip(targets, keys, strict=True)
    ]
    connection = session.connection()
    ids = connection.execute(_MESSAGES.returning(_MESSAGES.table.c.id, sort_by_parameter_order=True), messages)
    rows = [
        {
            "cpts_id": cpts_id,
            "report_id": report_id,
            "teleexpertise_request_id": None,
            "recipient_role": t.role,
            "recipient_professional_id": t.professional_id,
            "channel": t.channel,
            "address": t.address,
            "outbox_message_id": message_id,
            "message_id": mdn_token(key) if t.channel == "mssante" else None,
            "due_at": t.due_at,
        }
        for t, key, message_id in zip(targets, keys, ids.scalars().all(), strict=True)
    ]
    connection.execute(_DELIVERIES, rows)
    return len(rows)


_MESSAGES = insert(cast(Table, OutboxMessage.__table__))
_DELIVERIES = insert(cast(Table, Delivery.__table__))


def deliver_to_professional(
    session: Session,
    *,
    package: DocumentPackage,
    professional: Professional,
    role: RecipientRole,
    cpts_id: int,
    due_at: dt.datetime,
    report: Report | None = None,
    teleexpertise_request=None,
    group_key: str | None = None,
) -> Delivery | None:
    """By MSSanté when the professional has a secure mailbox; None when they have none (they read the
    document in the hub)."""
    if not professional.mssante_address:
        return None
    return queue_delivery(
        session,
        package=package,
        cpts_id=cpts_id,
        role=role,
        address=professional.mssante_address,
        channel="mssante",
        due_at=due_at,
        professional=professional,
        report=report,
        teleexpertise_request=teleexpertise_request,
        group_key=group_key,
    )


def patient_mailbox(patient: Patient) -> str | None:
    ins = ins_for_sending(patient)
    return f"{ins[0]}@{PATIENT_MAILBOX_DOMAIN}" if ins else None


def may_deposit_in_dmp(patient: Patient) -> bool:
    """Only a qualified identity, and only with the patient's DMP consent."""
    return patient_mailbox(patient) is not None and has_valid_consent(patient, ConsentKind.DMP_ACCESS)


# --- what comes back ---------------------------------------------------------------------------------------


def sync_with_outbox(session: Session, *, now: dt.datetime | None = None) -> int:
    """Carry the outbox's outcomes to the deliveries (sent, or failed when dead; a re-queued message brings
    its delivery back to queued), then move the reports whose deliveries are all settled. Set-based: one UPDATE
    whatever the number of deliveries (the worker runs it every few seconds, most often with nothing to carry)."""
    now = now or utcnow()
    changed = rows_changed(session, _SYNC)
    if changed:
        settle_reports(session, now=now)
    return changed


def _sync_statement():
    """The four moves in one UPDATE … FROM the outbox: their rows are disjoint (by the delivery's state and its
    message's), so one statement writes what the four did one after the other."""
    message = OutboxMessage
    sent = message.state == OutboxState.SENT
    dmp = Delivery.channel == "dmp"
    # A DMP deposit is answered synchronously by the DMP: sent is acknowledged.
    to_carry = and_(Delivery.state.in_((DeliveryState.QUEUED, DeliveryState.FAILED)), sent)
    dead = and_(Delivery.state == DeliveryState.QUEUED, message.state == OutboxState.DEAD)
    requeued = and_(
        Delivery.state == DeliveryState.FAILED, message.state.in_((OutboxState.PENDING, OutboxState.SENDING))
    )

    def state(value: DeliveryState):  # bound as the column stores it (its value), not as a bare Enum would
        return literal(value, Delivery.__table__.c.state.type)

    return (
        update(Delivery)
        .where(message.id == Delivery.outbox_message_id, or_(to_carry, dead, requeued))
        .values(
            state=case(
                (and_(to_carry, dmp), state(DeliveryState.ACKNOWLEDGED)),
                (to_carry, state(DeliveryState.SENT)),
                (dead, state(DeliveryState.FAILED)),
                else_=state(DeliveryState.QUEUED),
            ),
            sent_at=case((to_carry, message.sent_at), else_=Delivery.sent_at),
            acknowledged_at=case(
                (and_(to_carry, dmp), message.sent_at), (to_carry, null()), else_=Delivery.acknowledged_at
            ),
        )
        .execution_options(synchronize_session=False)
    )


_SYNC = _sync_statement()


def settle_reports(session: Session, *, now: dt.datetime, report_ids: Iterable[int] | None = None) -> None:
    """signed → sent when every delivery has left; sent → acknowledged when every one is acknowledged."""
    # A report whose documents are still being rendered has no delivery yet: it is not "all sent".
    query = select(Report).where(Report.state.in_((ReportState.SIGNED, ReportState.SENT)), ~awaiting_rendering())
    if report_ids is not None:
        query = query.where(Report.id.in_(list(report_ids)))
    reports = session.scalars(query.with_for_update() if _is_pg(session) else query).all()
    if not reports:
        return
    states: dict[int, list[DeliveryState]] = {report.id: [] for report in reports}
    for report_id, state in session.execute(
        select(Delivery.report_id, Delivery.state).where(Delivery.report_id.in_(list(states)))
    ):
        assert report_id is not None  # the IN clause
        states[report_id].append(state)
    for report in reports:
        delivered = states[report.id]
        if report.state is ReportState.SIGNED and all(s in SETTLED for s in delivered):
            report.state, report.sent_at = ReportState.SENT, now
        if report.state is ReportState.SENT and delivered and all(s is DeliveryState.ACKNOWLEDGED for s in delivered):
            report.state, report.acknowledged_at = ReportState.ACKNOWLEDGED, now
            events.emit(
                session,
                cpts_id=report.cpts_id,
                event="report.acknowledged",
                key=str(report.id),
                data={"report_id": report.id, "version": report.version},
                now=now,
            )


@dataclass(frozen=True)
class AcknowledgementOutcome:
    matched: int
    unknown: int


def apply_dispositions(
    session: Session, dispositions: Iterable, *, now: dt.datetime | None = None
) -> AcknowledgementOutcome:
    """The answers read back from the applicative mailbox (MDNs, or plain e-mails with a code in their
    subject): each marks its delivery acknowledged, or refused with the receiver's code (902 to 906, labelled
    in hub.models); a 900/901 is the receiver's request to replace or delete the document it received, kept
    with its code on an acknowledged delivery. An answer for an unknown message is counted and left; one
    read twice changes nothing."""
    now = now or utcnow()
    dispositions = list(dispositions)
    tokens = {token for d in dispositions for token in _candidates(d)}
    deliveries = {}
    if tokens:
        deliveries = {d.message_id: d for d in session.scalars(select(Delivery).where(Delivery.message_id.in_(tokens)))}
    matched = unknown = 0
    touched: set[int] = set()
    for disposition in dispositions:
        delivery = next((deliveries[t] for t in _candidates(disposition) if t in deliveries), None)
        if delivery is None:
            unknown += 1
            continue
        matched += 1
        if delivery.state in (DeliveryState.ACKNOWLEDGED, DeliveryState.REFUSED):
            continue
        request = not disposition.acknowledged and disposition.code in MDN_REQUEST_CODES
        if disposition.acknowledged:
            delivery.state = DeliveryState.ACKNOWLEDGED
        else:
            delivery.state = DeliveryState.ACKNOWLEDGED if request else DeliveryState.REFUSED
            delivery.refusal_code = (disposition.code or "")[:10] or None
            delivery.refusal_text = (disposition.text or "")[:300] or None
        delivery.acknowledged_at = getattr(disposition, "received_at", None) or now
        delivery.sent_at = delivery.sent_at or now
        if disposition.acknowledged:
            action = "delivery.acknowledged"
        else:
            action = "delivery.request" if request else "delivery.refused"
        audit.record(
            session,
            actor="mdn-reader",
            action=action,
            target=delivery,
            cpts_id=delivery.cpts_id,
            details={"code": delivery.refusal_code} if delivery.refusal_code else None,
        )
        if delivery.report_id:
            touched.add(delivery.report_id)
    if touched:
        settle_reports(session, now=now, report_ids=touched)
    return AcknowledgementOutcome(matched=matched, unknown=unknown)


def _candidates(disposition) -> tuple[str, ...]:
    return (disposition.token, *getattr(disposition, "alternatives", ()))


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def follow_deliveries(session_factory, *, mdn_settings=None) -> str:
    """The worker's loop beside the dispatcher: carry the outbox's outcomes to the deliveries, then read the
    MDNs back. The mailbox flags an MDN read only after its effect is committed, so a crash between the two
    reads it again, which changes nothing (apply_dispositions is idempotent)."""
    with session_scope(session_factory) as session:
        changed = sync_with_outbox(session)
    outcomes: list[AcknowledgementOutcome] = []

    def record(dispositions) -> None:
        if dispositions:
            with session_scope(session_factory) as session:
                outcomes.append(apply_dispositions(session, dispositions))

    if mdn_settings is not None:
        try:
            mdn.fetch_dispositions(mdn_settings, on_fetched=record)
        except TransientError as exc:  # the mailbox is down: its MDNs wait there for the next pass
            log.warning("MDN reader: %s", exc)
    read = sum(o.matched for o in outcomes), sum(o.unknown for o in outcomes)
    return f"{changed} envoi(s) mis à jour, {read[0]} accusé(s) lu(s), {read[1]} inconnu(s)"
