import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.organisation import Organisation


class Profession(StrEnum):
    GENERAL_PRACTITIONER = "medecin_generaliste"
    SPECIALIST = "medecin_specialiste"
    NURSE = "infirmier"
    PHYSIOTHERAPIST = "masseur_kinesitherapeute"
    PHARMACIST = "pharmacien"
    SPEECH_THERAPIST = "orthophoniste"
    ORTHOPTIST = "orthoptiste"
    MIDWIFE = "sage_femme"
    COORDINATOR = "coordinateur"


PROFESSION_LABELS = {
    Profession.GENERAL_PRACTITIONER: "Médecin généraliste",
    Profession.SPECIALIST: "Médecin spécialiste",
    Profession.NURSE: "Infirmier·e",
    Profession.PHYSIOTHERAPIST: "Masseur-kinésithérapeute",
    Profession.PHARMACIST: "Pharmacien·ne",
    Profession.SPEECH_THERAPIST: "Orthophoniste",
    Profession.ORTHOPTIST: "Orthoptiste",
    Profession.MIDWIFE: "Sage-femme",
    Profession.COORDINATOR: "Coordinateur·rice (non clinique)",
}

ALL_DAYS = "1234567"

CLINICAL_PROFESSIONS = frozenset(Profession) - {Profession.COORDINATOR}

professional_organisations = Table(
    "professional_organisations",
    Base.metadata,
    Column("professional_id", ForeignKey("professionals.id", ondelete="CASCADE"), primary_key=True),
    Column("organisation_id", ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True),
)


def professional_full_name(first_name: str, last_name: str) -> str:
    """`Claire MARTIN`: `Professional.full_name`, for a page that reads its professionals' names as plain rows."""
    return f"{first_name} {last_name.upper()}"


def serves_commune(own_commune: str | None, served_communes: str, commune_insee: str | None) -> bool:
    """`Professional.serves`, for a professional read as a plain row: at home in her own commune or one she
    serves."""
    return commune_insee is not None and (commune_insee == own_commune or commune_insee in served_communes.split())


def works_on_day(working_days: str, isoweekday: int) -> bool:
    """`Professional.works_on`, for a professional read as a plain row."""
    return str(isoweekday) in working_days


class Professional(Base):
    __tablename__ = "professionals"
    __table_args__ = (
        CheckConstraint(
            "profession <> 'medecin_specialiste' OR specialty IS NOT NULL", name="specialist_has_specialty"
        ),
        CheckConstraint("profession = 'coordinateur' OR rpps IS NOT NULL", name="clinician_has_rpps"),
        CheckConstraint("new_patient_capacity >= 0", name="new_patient_capacity_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    rpps: Mapped[str | None] = mapped_column(String(11), unique=True)
    last_name: Mapped[str] = mapped_column(String(100))
    first_name: Mapped[str] = mapped_column(String(100))
    profession: Mapped[Profession] = mapped_column(enum_type(Profession, "profession"))
    specialty: Mapped[str | None] = mapped_column(String(100))
    mssante_address: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))
    # Plain e-mail for notifications that carry no health data (those go through MSSanté).
    email: Mapped[str | None] = mapped_column(String(254))
    commune_insee: Mapped[str | None] = mapped_column(String(5))
    # INSEE codes of the communes where the professional makes home visits, space-separated.
    served_communes: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The ISO weekdays (1 Monday … 7 Sunday) the professional works, as digits in order: "12345" for Monday to
    # Friday. Everyone works every day until they say otherwise, so no one drops out of the offers unasked.
    working_days: Mapped[str] = mapped_column(String(7), default=ALL_DAYS, server_default=ALL_DAYS)
    # A GP's « J'accepte N nouveaux patients médecin traitant »: taken one by one as they accept proposals.
    new_patient_capacity: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    does_telesoin: Mapped[bool] = mapped_column(Boolean, default=False)
    accompanies_teleconsultation: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisations: Mapped[list[Organisation]] = relationship(secondary=professional_organisations)

    def serves(self, commune_insee: str | None) -> bool:
        return serves_commune(self.commune_insee, self.served_communes, commune_insee)

    def works_on(self, isoweekday: int) -> bool:
        return works_on_day(self.working_days, isoweekday)

    @property
    def full_name(self) -> str:
        return professional_full_name(self.first_name, self.last_name)

    @property
    def profession_label(self) -> str:
        label = PROFESSION_LABELS[self.profession]
        return f"{label} ({self.specialty})" if self.specialty else label
