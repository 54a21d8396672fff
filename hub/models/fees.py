import datetime as dt
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.professional import Professional


class TariffUnit(StrEnum):
    ACT = "act"  # the amount is the price of one act
    KEY_LETTER = "key_letter"  # the amount is the value of the key letter, times the act's coefficient
    BLOCK = "block"  # the amount is paid once per completed block of `block_size` acts


class Tariff(Base):
    """One version of a fee code's price: a new avenant is a new row, never an edit of history."""

    __tablename__ = "tariffs"
    __table_args__ = (
        CheckConstraint("effective_until IS NULL OR effective_until >= effective_from", name="tariff_period"),
        CheckConstraint("amount >= 0", name="tariff_amount"),
        Index("ix_tariffs_code_from", "code", "effective_from"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(10))
    label: Mapped[str] = mapped_column(String(200))
    profession: Mapped[str | None] = mapped_column(String(40))
    unit: Mapped[TariffUnit] = mapped_column(enum_type(TariffUnit, "tariff_unit"), default=TariffUnit.ACT)
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    effective_from: Mapped[dt.date] = mapped_column(Date)
    effective_until: Mapped[dt.date | None] = mapped_column(Date)  # inclusive
    block_size: Mapped[int | None] = mapped_column(Integer)
    yearly_cap_amount: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    yearly_cap_per_patient: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeeStatus(StrEnum):
    ACCRUED = "accrued"
    DECLARED = "declared"
    PAID = "paid"
    CANCELLED = "cancelled"


FEE_STATUS_LABELS = {
    FeeStatus.ACCRUED: "Acquis",
    FeeStatus.DECLARED: "Déclaré",
    FeeStatus.PAID: "Payé",
    FeeStatus.CANCELLED: "Annulé",
}


class FeeEntry(Base):
    """A fee accrued by a workflow for one act of one professional, priced at the tariff in force on the
    act's local date. A capped act is still recorded, at zero, with the reason."""

    __tablename__ = "fee_entries"
    __table_args__ = (
        UniqueConstraint("source_key", name="uq_fee_entries_source_key"),
        CheckConstraint("amount >= 0", name="fee_amount"),
        Index("ix_fee_entries_professional_day", "professional_id", "act_on"),
        Index("ix_fee_entries_cpts_day", "cpts_id", "act_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    professional_id: Mapped[int] = mapped_column(ForeignKey("professionals.id"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"), index=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"))
    code: Mapped[str] = mapped_column(String(10))
    act_on: Mapped[dt.date] = mapped_column(Date)  # the act's date in the territory's zone
    coefficient: Mapped[Decimal] = mapped_column(Numeric(6, 2), default=Decimal(1))
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    status: Mapped[FeeStatus] = mapped_column(enum_type(FeeStatus, "fee_status"), default=FeeStatus.ACCRUED)
    is_remote_care: Mapped[bool] = mapped_column(default=False)  # counts toward the 20 % télésoin share
    prescriber_rpps: Mapped[str | None] = mapped_column(String(11))
    note: Mapped[str | None] = mapped_column(String(300))
    cancel_reason: Mapped[str | None] = mapped_column(String(300))
    source_key: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    professional: Mapped[Professional] = relationship()
    tariff: Mapped[Tariff] = relationship()


class DeclaredActivity(Base):
    """A professional's total conventioned activity for one month (€), declared or imported: the
    denominator of the 20 % remote-care share."""

    __tablename__ = "declared_activities"
    __table_args__ = (
        UniqueConstraint("professional_id", "year", "month", name="uq_declared_activities_month"),
        CheckConstraint("month BETWEEN 1 AND 12", name="month_range"),
        CheckConstraint("amount >= 0", name="activity_amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    professional_id: Mapped[int] = mapped_column(ForeignKey("professionals.id"))
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    source: Mapped[str] = mapped_column(String(20), default="declared")  # declared | imported
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
