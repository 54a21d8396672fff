import datetime as dt
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.professional import Professional


class Sex(StrEnum):
    FEMALE = "F"
    MALE = "M"
    INDETERMINATE = "I"


class IdentityStatus(StrEnum):
    """RNIV identity statuses; derived from the recorded checks, never set by hand."""

    PROVISIONAL = "PROV"
    VALIDATED = "VALI"
    RETRIEVED = "RECUP"
    QUALIFIED = "QUAL"


# Keyed by str so a document's status code (the enum's value) finds its label too.
IDENTITY_STATUS_LABELS: dict[str, str] = {
    IdentityStatus.PROVISIONAL: "Identité provisoire",
    IdentityStatus.VALIDATED: "Identité validée",
    IdentityStatus.RETRIEVED: "Identité récupérée",
    IdentityStatus.QUALIFIED: "Identité qualifiée",
}


class IdentityCheckKind(StrEnum):
    DOCUMENT = "document"
    INS_RETRIEVAL = "ins_retrieval"


class IdentityDocumentType(StrEnum):
    """Documents of high trust level accepted by the RNIV to validate an identity."""

    NATIONAL_ID_CARD = "cni"
    PASSPORT = "passeport"
    RESIDENCE_PERMIT = "titre_sejour"
    BIRTH_CERTIFICATE_WITH_FAMILY_BOOK = "livret_famille"


IDENTITY_DOCUMENT_LABELS = {
    IdentityDocumentType.NATIONAL_ID_CARD: "Carte nationale d'identité",
    IdentityDocumentType.PASSPORT: "Passeport",
    IdentityDocumentType.RESIDENCE_PERMIT: "Titre de séjour",
    IdentityDocumentType.BIRTH_CERTIFICATE_WITH_FAMILY_BOOK: "Livret de famille / extrait d'acte (mineur)",
}


def patient_display_name(
    used_last_name: str | None, birth_name: str, used_first_name: str | None, first_birth_given_name: str
) -> str:
    """`DUPONT Marie`, by the used names when there are: `Patient.display_name`, for a page that reads its
    patients' names as plain rows."""
    return f"{(used_last_name or birth_name).upper()} {used_first_name or first_birth_given_name}"


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (
        UniqueConstraint("cpts_id", "ins_matricule", name="uq_patients_cpts_ins"),
        Index("ix_patients_traits", "cpts_id", "birth_name", "birth_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: uq_patients_cpts_ins and ix_patients_traits both lead with it.
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    # The five strict INS traits.
    birth_name: Mapped[str] = mapped_column(String(100))
    first_birth_given_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    sex: Mapped[Sex] = mapped_column(enum_type(Sex, "sex"))
    birth_place_insee: Mapped[str] = mapped_column(String(5))
    birth_given_names: Mapped[str | None] = mapped_column(String(200))
    used_last_name: Mapped[str | None] = mapped_column(String(100))
    used_first_name: Mapped[str | None] = mapped_column(String(100))
    ins_matricule: Mapped[str | None] = mapped_column(String(15))
    ins_oid: Mapped[str | None] = mapped_column(String(40))
    identity_status: Mapped[IdentityStatus] = mapped_column(
        enum_type(IdentityStatus, "identity_status"), default=IdentityStatus.PROVISIONAL
    )
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str | None] = mapped_column(Text)
    commune_insee: Mapped[str | None] = mapped_column(String(5))
    attending_gp_id: Mapped[int | None] = mapped_column(ForeignKey("professionals.id"), index=True)
    legal_representative_name: Mapped[str | None] = mapped_column(String(200))
    legal_representative_phone: Mapped[str | None] = mapped_column(String(20))
    legal_representative_relationship: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    attending_gp: Mapped[Professional | None] = relationship()
    identity_checks: Mapped[list["IdentityCheck"]] = relationship(
        back_populates="patient", order_by="IdentityCheck.checked_at"
    )
    consents: Mapped[list["Consent"]] = relationship(
        back_populates="patient", order_by="[Consent.collected_on, Consent.id]"
    )

    @classmethod
    def display_order(cls) -> tuple:
        """ORDER BY of a list that shows `display_name`: by the used name when there is one."""
        return (
            func.upper(func.coalesce(cls.used_last_name, cls.birth_name)),
            func.upper(func.coalesce(cls.used_first_name, cls.first_birth_given_name)),
            cls.id,
        )

    @property
    def display_name(self) -> str:
        return patient_display_name(
            self.used_last_name, self.birth_name, self.used_first_name, self.first_birth_given_name
        )

    @property
    def initials(self) -> str:
        last = self.used_last_name or self.birth_name
        first = self.used_first_name or self.first_birth_given_name
        return f"{first[:1]}.{last[:1]}.".upper()

    @property
    def is_qualified(self) -> bool:
        return self.identity_status is IdentityStatus.QUALIFIED

    def age_on(self, day: dt.date) -> int:
        return age_on(self.birth_date, day)


def age_on(birth_date: dt.date, day: dt.date) -> int:
    """The age in whole years on `day` of someone born on `birth_date`."""
    years = day.year - birth_date.year
    return years - ((day.month, day.day) < (birth_date.month, birth_date.day))


class IdentityCheck(Base):
    """A traced identity verification: a document seen, or the INS retrieved from the INSi service."""

    __tablename__ = "identity_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    kind: Mapped[IdentityCheckKind] = mapped_column(enum_type(IdentityCheckKind, "identity_check_kind"))
    document_type: Mapped[IdentityDocumentType | None] = mapped_column(
        enum_type(IdentityDocumentType, "identity_document_type")
    )
    checked_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    checked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(String(300))
    # Set when a strict trait or the INS changes afterwards: the check no longer vouches for the identity.
    invalidated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    patient: Mapped[Patient] = relationship(back_populates="identity_checks")


class CareTeamMember(Base):
    """A professional who takes part in a patient's care (the patient's own IDEL, kiné, cardiologist…)."""

    __tablename__ = "care_team_members"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    professional_id: Mapped[int] = mapped_column(ForeignKey("professionals.id"), primary_key=True, index=True)
    added_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    professional: Mapped[Professional] = relationship(lazy="joined")


class ConsentKind(StrEnum):
    TELEHEALTH = "telehealth"
    DATA_PROCESSING = "data_processing"
    DMP_ACCESS = "dmp_access"


CONSENT_KIND_LABELS = {
    ConsentKind.TELEHEALTH: "Télésoin / téléconsultation",
    ConsentKind.DATA_PROCESSING: "Traitement des données",
    ConsentKind.DMP_ACCESS: "Accès au DMP",
}


class ConsentMethod(StrEnum):
    ORAL = "oral"
    WRITTEN = "written"
    ELECTRONIC = "electronic"


CONSENT_METHOD_LABELS = {
    ConsentMethod.ORAL: "Oral, tracé dans le dossier",
    ConsentMethod.WRITTEN: "Écrit signé",
    ConsentMethod.ELECTRONIC: "Électronique",
}


class Consent(Base):
    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    kind: Mapped[ConsentKind] = mapped_column(enum_type(ConsentKind, "consent_kind"))
    method: Mapped[ConsentMethod] = mapped_column(enum_type(ConsentMethod, "consent_method"))
    collected_by_professional_id: Mapped[int | None] = mapped_column(ForeignKey("professionals.id"))
    recorded_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The day the consent was collected (a GP's form asks for the day only); the time too when it is known (an
    # IDEL recording it at the session).
    collected_on: Mapped[dt.date] = mapped_column(Date)
    collected_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    withdrawal_reason: Mapped[str | None] = mapped_column(String(300))

    patient: Mapped[Patient] = relationship(back_populates="consents")
    collected_by: Mapped[Professional | None] = relationship()

    @property
    def is_valid(self) -> bool:
        return self.withdrawn_at is None
