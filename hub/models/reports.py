"""Remote acts' written traces: reports (compte-rendus) and their deliveries.

A signed report is frozen: the signature fixes its content (the clinical document and its recipients, under
a hash) and the worker renders its PDF and CDA once from that, stored under their hash (hub.documents.freezing),
so that every delivery and every re-send carries the same bytes. A correction is
a new version (`supersedes_id`) that is signed, stored and routed in turn.
"""

import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, and_, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.patient import Patient
from hub.models.professional import Professional


class ReportKind(StrEnum):
    TELECONSULTATION = "teleconsultation"
    TELESOIN = "telesoin"
    TELEEXPERTISE = "teleexpertise"  # the expert's answer


# LOINC document type codes (ANS JDV_J07, DESIGN.md "Interoperability").
REPORT_LOINC = {
    ReportKind.TELECONSULTATION: "85208-7",
    ReportKind.TELEEXPERTISE: "85208-7",
    ReportKind.TELESOIN: "11506-3",
}
LOINC_LABELS = {
    "85208-7": "Compte rendu de télémédecine",
    "11506-3": "Compte rendu de suivi de soins par auxiliaire médical",
    "75496-0": "Demande d'acte de télémédecine",
    "96349-6": "Lettre d'adressage",
}
REPORT_KIND_LABELS = {
    ReportKind.TELECONSULTATION: "Compte rendu de téléconsultation",
    ReportKind.TELESOIN: "Compte rendu de télésoin",
    ReportKind.TELEEXPERTISE: "Réponse de téléexpertise",
}


class ReportState(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"


REPORT_STATE_LABELS = {
    ReportState.DRAFT: "Brouillon",
    ReportState.SIGNED: "Signé, envoi en attente",
    ReportState.SENT: "Envoyé",
    ReportState.ACKNOWLEDGED: "Acquitté",
}


AWAITING_RENDERING_SQL = "content_sha256 IS NOT NULL AND pdf_sha256 IS NULL"


class Report(Base):
    """A compte-rendu written by the performer of an appointment, or the expert's answer to a request."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("document_uid", name="uq_reports_document_uid"),
        UniqueConstraint("root_id", "version", name="uq_reports_root_version"),
        Index("ix_reports_cpts_state", "cpts_id", "state"),
        # The worker's queue of documents to render: a handful of rows at any time, whatever the reports' number.
        Index(
            "ix_reports_awaiting_rendering",
            "id",
            postgresql_where=text(AWAITING_RENDERING_SQL),
            sqlite_where=text(AWAITING_RENDERING_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    kind: Mapped[ReportKind] = mapped_column(enum_type(ReportKind, "report_kind"))
    state: Mapped[ReportState] = mapped_column(enum_type(ReportState, "report_state"), default=ReportState.DRAFT)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("professionals.id"), index=True)
    # Set for a session's report; a téléexpertise answer has none (its request points at it instead).
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"), index=True)
    # Versions: the first report of a chain is its own root; a correction points at what it supersedes. No index of
    # its own: uq_reports_root_version (root_id, version) serves the lookups by root_id.
    root_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), unique=True)
    superseded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # What HAS asks a report to hold (seed 002).
    performed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    acts: Mapped[str] = mapped_column(Text, default="")
    prescriptions: Mapped[str | None] = mapped_column(Text)
    participant_ids: Mapped[str] = mapped_column(Text, default="[]")  # JSON: every professional who took part
    technical_incidents: Mapped[str | None] = mapped_column(Text)
    conclusion: Mapped[str] = mapped_column(Text, default="")
    follow_up: Mapped[str | None] = mapped_column(Text)
    follow_up_modality: Mapped[str | None] = mapped_column(String(40))  # a pathway step asked (Modality value)
    copy_participants: Mapped[bool] = mapped_column(Boolean, default=False)
    # Frozen at signing: the document and its recipients as signed (JSON, workflows.reports.sign), never read with
    # the report (deferred: the worker alone renders from it), and its SHA-256.
    document_uid: Mapped[str | None] = mapped_column(String(64))  # OID-shaped unique id of the CDA
    frozen_content: Mapped[str | None] = mapped_column(Text, deferred=True)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    # Rendered by the worker after the signature (workflows.reports.render_pending); null until then.
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    pdf_size: Mapped[int | None] = mapped_column(Integer)
    cda_sha256: Mapped[str | None] = mapped_column(String(64))
    cda_size: Mapped[int | None] = mapped_column(Integer)
    # A worker rendering the documents holds them until then; past it, another may take them over.
    render_lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Counted at each claim (a worker that dies mid-way counts too); the last failure's time and its kind (an
    # exception's type, never its message, which may quote the report): a person sees a report that keeps failing.
    render_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    render_failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    render_error: Mapped[str | None] = mapped_column(String(300))
    signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    signed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship()
    author: Mapped[Professional] = relationship()
    deliveries: Mapped[list["Delivery"]] = relationship(
        back_populates="report", order_by="Delivery.id", foreign_keys="Delivery.report_id"
    )

    @property
    def loinc(self) -> str:
        return REPORT_LOINC[self.kind]

    @property
    def document_pending(self) -> bool:
        """Signed, its PDF and CDA not rendered yet: « document en préparation »."""
        return self.content_sha256 is not None and self.pdf_sha256 is None

    @property
    def document_failed(self) -> bool:
        """Still to render after a failed rendering: the coordination sees it late, the worker keeps retrying."""
        return self.document_pending and self.render_failed_at is not None


def awaiting_rendering():
    """The signed reports whose documents the worker has still to render (and so to send)."""
    return and_(Report.content_sha256.is_not(None), Report.pdf_sha256.is_(None))


class RecipientRole(StrEnum):
    PATIENT = "patient"
    ATTENDING_GP = "medecin_traitant"
    PRESCRIBER = "prescripteur"  # the referring GP, or the téléexpertise requester
    PARTICIPANT = "participant"
    DMP = "dmp"


RECIPIENT_ROLE_LABELS = {
    RecipientRole.PATIENT: "Patient (Mon espace santé)",
    RecipientRole.ATTENDING_GP: "Médecin traitant",
    RecipientRole.PRESCRIBER: "Prescripteur / médecin adresseur",
    RecipientRole.PARTICIPANT: "Professionnel participant",
    RecipientRole.DMP: "DMP (Mon espace santé)",
}


class DeliveryState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    REFUSED = "refused"  # the receiver said it could not integrate the document (902 to 906)
    FAILED = "failed"  # the outbox message is dead


DELIVERY_STATE_LABELS = {
    DeliveryState.QUEUED: "Envoi en attente",
    DeliveryState.SENT: "Envoyé",
    DeliveryState.ACKNOWLEDGED: "Acquitté",
    DeliveryState.REFUSED: "Refusé par le destinataire",
    DeliveryState.FAILED: "Échec d'envoi",
}


# The ANS codes an MSSanté receiver sends back, in an MDN or in a plain e-mail's subject (DESIGN.md). The table
# is indicative: the reader keeps any three-digit code, and one it does not know is shown with the receiver's text.
MDN_CODE_LABELS = {
    "900": "demande de remplacement",
    "901": "demande de suppression",
    "902": "patient inconnu",
    "903": "INS absent",
    "904": "INS discordant",
    "905": "traits d'identité incomplets",
    "906": "autre erreur",
}
# The receiver asks the sender to replace or delete the document it received: not a refusal.
MDN_REQUEST_CODES = frozenset({"900", "901"})
# Past this delay a sent document without any answer is « sans accusé »: silence is never a refusal.
NO_ACKNOWLEDGEMENT_AFTER = dt.timedelta(days=7)
NO_ACKNOWLEDGEMENT_LABEL = "Sans accusé"
AWAITING_ACKNOWLEDGEMENT_LABEL = "En attente d'acquittement"
REQUEST_LABEL = "Demande du destinataire"


def delivery_state_label(state: DeliveryState, refusal_code: str | None = None, refusal_text: str | None = None) -> str:
    """« Refusé par le destinataire (903 : INS absent) » when the receiver said why; a 900/901 is its request."""
    reason = MDN_CODE_LABELS.get(refusal_code or "") or refusal_text or "motif non précisé"
    if refusal_code in MDN_REQUEST_CODES and state is not DeliveryState.REFUSED:
        return f"{REQUEST_LABEL} ({refusal_code} : {reason})"
    label = DELIVERY_STATE_LABELS[state]
    if state is not DeliveryState.REFUSED:
        return label
    return f"{label} ({refusal_code} : {reason})" if refusal_code else f"{label} ({reason})"


def unacknowledged(delivery: "Delivery", now: dt.datetime | None = None) -> bool:
    """Sent, no answer, and the delay is over."""
    return (
        delivery.state is DeliveryState.SENT
        and delivery.sent_at is not None
        and (now or utcnow()) - delivery.sent_at >= NO_ACKNOWLEDGEMENT_AFTER
    )


def delivery_label(delivery: "Delivery", now: dt.datetime | None = None) -> str:
    """What a delivery's receiver said, or « Sans accusé » once it has been silent past the delay."""
    if unacknowledged(delivery, now):
        return NO_ACKNOWLEDGEMENT_LABEL
    return delivery_state_label(delivery.state, delivery.refusal_code, delivery.refusal_text)


class Delivery(Base):
    """One document to one recipient: the business side of an outbox message (which recipient, for which
    role, due when, acknowledged or refused by the receiver's MDN)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint("report_id IS NOT NULL OR teleexpertise_request_id IS NOT NULL", name="delivery_has_document"),
        Index("ix_deliveries_state_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), index=True)
    teleexpertise_request_id: Mapped[int | None] = mapped_column(ForeignKey("teleexpertise_requests.id"), index=True)
    recipient_role: Mapped[RecipientRole] = mapped_column(enum_type(RecipientRole, "recipient_role"))
    recipient_professional_id: Mapped[int | None] = mapped_column(ForeignKey("professionals.id"))
    channel: Mapped[str] = mapped_column(String(20))  # mssante, dmp
    address: Mapped[str] = mapped_column(String(254))
    outbox_message_id: Mapped[int] = mapped_column(ForeignKey("outbox_messages.id"), unique=True)
    # The Message-ID the MDN will quote (MSSanté), known before sending because it derives from the key.
    message_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    state: Mapped[DeliveryState] = mapped_column(
        enum_type(DeliveryState, "delivery_state"), default=DeliveryState.QUEUED
    )
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    refusal_code: Mapped[str | None] = mapped_column(String(10))
    refusal_text: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    report: Mapped[Report | None] = relationship(back_populates="deliveries", foreign_keys=[report_id])
    recipient_professional: Mapped[Professional | None] = relationship()
