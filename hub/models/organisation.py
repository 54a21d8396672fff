import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type


class OrganisationKind(StrEnum):
    CPTS = "cpts"
    HOSPITAL = "hospital"
    MSP = "msp"
    PHARMACY = "pharmacy"
    EHPAD = "ehpad"
    PRACTICE = "practice"


ORGANISATION_KIND_LABELS = {
    OrganisationKind.CPTS: "CPTS",
    OrganisationKind.HOSPITAL: "Établissement de santé",
    OrganisationKind.MSP: "Maison de santé pluriprofessionnelle",
    OrganisationKind.PHARMACY: "Officine",
    OrganisationKind.EHPAD: "EHPAD",
    OrganisationKind.PRACTICE: "Cabinet",
}


class Organisation(Base):
    """A CPTS (the hub's tenant) or a structure that belongs to one."""

    __tablename__ = "organisations"
    __table_args__ = (CheckConstraint("(kind = 'cpts') = (cpts_id IS NULL)", name="cpts_has_no_parent"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[OrganisationKind] = mapped_column(enum_type(OrganisationKind, "organisation_kind"))
    finess: Mapped[str | None] = mapped_column(String(9), unique=True)
    cpts_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    commune_insee: Mapped[str | None] = mapped_column(String(5))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A CPTS's choice (set by its admin): a professional who has logged in through Pro Santé Connect once may no
    # longer log in with a password, so that a leaked password gives nothing.
    is_password_refused_to_psc_users: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    @property
    def tenant_id(self) -> int:
        if self.kind is OrganisationKind.CPTS:
            return self.id
        assert self.cpts_id is not None  # the check constraint cpts_has_no_parent
        return self.cpts_id
