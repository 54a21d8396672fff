"""Who was there at a session (issue 16, item 3): the patient, the accompanying professional (an assisted
teleconsultation's IDEL or pharmacist; none in télésoin) and the performer, each present or absent, as a person
recorded it after the session's start (workflows.attendance). One row per appointment, replaced when corrected;
the audit keeps each recording."""

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models.scheduling import Appointment


class Attendance(Base):
    __tablename__ = "attendances"

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), unique=True)
    is_patient_present: Mapped[bool] = mapped_column(Boolean)
    is_accompanying_present: Mapped[bool | None] = mapped_column(Boolean)  # None: nobody accompanies the session
    is_performer_present: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(String(500))
    recorded_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    appointment: Mapped[Appointment] = relationship()
