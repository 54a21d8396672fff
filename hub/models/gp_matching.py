"""Patients without a médecin traitant, kept on a list by the coordination with their consent, and the GPs of the
territory who declare they take new ones (Professional.new_patient_capacity): proposals and their outcome."""

import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.patient import ConsentMethod, Patient
from hub.models.professional import Professional


class GpSearchState(StrEnum):
    WAITING = "en_attente"
    MATCHED = "medecin_trouve"  # a GP of the territory accepted through the hub
    FOUND_ELSEWHERE = "trouve_ailleurs"
    WITHDRAWN = "retire"  # the patient withdrew their consent, or left the list


GP_SEARCH_STATE_LABELS = {
    GpSearchState.WAITING: "En attente d'un médecin traitant",
    GpSearchState.MATCHED: "Médecin traitant trouvé",
    GpSearchState.FOUND_ELSEWHERE: "Médecin traitant trouvé par ailleurs",
    GpSearchState.WITHDRAWN: "Retiré de la liste",
}


class GpProposalState(StrEnum):
    PENDING = "en_attente"
    ACCEPTED = "acceptee"
    REFUSED = "refusee"
    WITHDRAWN = "retiree"


GP_PROPOSAL_STATE_LABELS = {
    GpProposalState.PENDING: "En attente de réponse",
    GpProposalState.ACCEPTED: "Acceptée",
    GpProposalState.REFUSED: "Refusée",
    GpProposalState.WITHDRAWN: "Retirée",
}

# The short list of chronic conditions the coordination ticks (fragility criteria), by code.
CHRONIC_CONDITIONS = {
    "diabete": "Diabète",
    "insuffisance_cardiaque": "Insuffisance cardiaque",
    "bpco": "BPCO ou insuffisance respiratoire",
    "insuffisance_renale": "Insuffisance rénale",
    "cancer": "Cancer en cours de traitement",
    "troubles_cognitifs": "Troubles cognitifs",
    "psychiatrie": "Trouble psychiatrique sévère",
}


class GpSearch(Base):
    """A patient's place on the list of patients without a médecin traitant, from their consent to the outcome."""

    __tablename__ = "gp_searches"
    __table_args__ = (
        # One open place per patient: a second entry while the first waits is refused by the database too.
        Index(
            "uq_gp_searches_one_waiting",
            "patient_id",
            unique=True,
            sqlite_where=text("state = 'en_attente'"),
            postgresql_where=text("state = 'en_attente'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    state: Mapped[GpSearchState] = mapped_column(
        enum_type(GpSearchState, "gp_search_state"), default=GpSearchState.WAITING
    )
    # The patient's consent to be on the list (GDPR): the day it was given and how.
    consent_on: Mapped[dt.date] = mapped_column(Date)
    consent_method: Mapped[ConsentMethod] = mapped_column(enum_type(ConsentMethod, "gp_search_consent_method"))
    entered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    entered_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # Fragility criteria (workflows.gp_matching.fragility reads them).
    has_ald: Mapped[bool] = mapped_column(Boolean, default=False)
    chronic_conditions: Mapped[str] = mapped_column(Text, default="")  # codes of CHRONIC_CONDITIONS, space-separated
    hospitalised_on: Mapped[dt.date | None] = mapped_column(Date)
    is_isolated: Mapped[bool] = mapped_column(Boolean, default=False)
    other_fragility: Mapped[str | None] = mapped_column(String(300))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    close_reason: Mapped[str | None] = mapped_column(String(300))
    gp_id: Mapped[int | None] = mapped_column(ForeignKey("professionals.id"))

    patient: Mapped[Patient] = relationship()
    gp: Mapped[Professional | None] = relationship()
    proposals: Mapped[list["GpProposal"]] = relationship(
        back_populates="search", order_by="GpProposal.id", cascade="all, delete-orphan"
    )

    @property
    def conditions(self) -> list[str]:
        return self.chronic_conditions.split()


class GpProposal(Base):
    """The coordination asks a GP to become the patient's médecin traitant; the GP answers from their desk."""

    __tablename__ = "gp_proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("gp_searches.id", ondelete="CASCADE"), index=True)
    gp_id: Mapped[int] = mapped_column(ForeignKey("professionals.id"), index=True)
    state: Mapped[GpProposalState] = mapped_column(
        enum_type(GpProposalState, "gp_proposal_state"), default=GpProposalState.PENDING
    )
    proposed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    proposed_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(300))

    search: Mapped[GpSearch] = relationship(back_populates="proposals")
    gp: Mapped[Professional] = relationship()
