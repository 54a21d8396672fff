"""The CPTS's outgoing messages as the coordination follows them ("Envois"): where each one stands and, for a
document, whether its receiver acknowledged it. Only addresses, kinds and ids: never a payload."""

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.errors import NotFound
from hub.models import (
    DELIVERY_STATE_LABELS,
    OUTBOX_STATE_LABELS,
    Delivery,
    DeliveryState,
    OutboxMessage,
    OutboxState,
)

# The MSSanté MDN codes a receiver answers when it cannot integrate a document (DESIGN.md, Interoperability).
REFUSAL_REASONS = {
    "902": "patient inconnu",
    "903": "INS absent",
    "904": "INS incohérent avec celui du destinataire",
}
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
    "appointment_cancelled": "Rendez-vous annulé",
    "report": "Compte rendu",
    "teleexpertise_request": "Demande de téléexpertise",
}


@dataclass(frozen=True)
class OutboxLine:
    message: OutboxMessage
    delivery: Delivery | None

    @property
    def state_label(self) -> str:
        return OUTBOX_STATE_LABELS[self.message.state]

    @property
    def channel_label(self) -> str:
        return CHANNEL_LABELS.get(self.message.channel, self.message.channel)

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.message.kind, self.message.kind)

    @property
    def acknowledgement(self) -> str | None:
        """For a document: acknowledged, refused (with the receiver's code and its meaning) or not yet."""
        return acknowledgement_of(self.delivery)

    @property
    def can_requeue(self) -> bool:
        return self.message.state is OutboxState.DEAD


def acknowledgement_of(delivery: Delivery | None) -> str | None:
    if delivery is None:
        return None
    if delivery.state is DeliveryState.REFUSED:
        code = delivery.refusal_code or ""
        reason = REFUSAL_REASONS.get(code) or delivery.refusal_text or "motif non précisé"
        return f"Refusé par le destinataire ({code} : {reason})" if code else f"Refusé par le destinataire ({reason})"
    if delivery.state is DeliveryState.SENT:
        return "En attente d'acquittement"
    return DELIVERY_STATE_LABELS[delivery.state]


def list_messages(
    session: Session,
    cpts_id: int,
    *,
    state: OutboxState | None = None,
    channel: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[OutboxLine], int]:
    """A page of the CPTS's messages, newest first, each with its document delivery if it carries one:
    two queries whatever the page size."""
    conditions = [OutboxMessage.cpts_id == cpts_id]
    if state is not None:
        conditions.append(OutboxMessage.state == state)
    if channel:
        conditions.append(OutboxMessage.channel == channel)
    total = session.scalar(select(func.count()).select_from(OutboxMessage).where(*conditions))
    rows = session.execute(
        select(OutboxMessage, Delivery)
        .outerjoin(Delivery, Delivery.outbox_message_id == OutboxMessage.id)
        .where(*conditions)
        .order_by(OutboxMessage.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return [OutboxLine(message, delivery) for message, delivery in rows], total


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
