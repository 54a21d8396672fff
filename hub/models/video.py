"""A session's video room (issue 16, item 4). The video runs in the structure's certified teleconsultation tool,
never in the hub: a program names the tool's URL template (`SessionProgram.video_url_template`), each session gets
a random room id put in that template, and the patient gets a hub link `/visio/<token>` that redirects to the room
only around the session. The token is kept only as its SHA-256 hash."""

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models.scheduling import Appointment


class VideoRoom(Base):
    __tablename__ = "video_rooms"

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), unique=True)
    # Random, nothing of the patient in it; shared by the participants of one group slot (workflows.video).
    room: Mapped[str] = mapped_column(String(64))
    patient_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    patient_link_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    appointment: Mapped[Appointment] = relationship()
