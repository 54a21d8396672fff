import datetime as dt

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class ConnectorSetting(Base):
    """A CPTS's settings of one connector channel, edited by its admin. Secrets stay out of the database:
    certificates and keys are paths on the server, the webhook secret and SMS token are read from the
    server's configuration under the name given here."""

    __tablename__ = "connector_settings"
    __table_args__ = (UniqueConstraint("cpts_id", "channel", name="uq_connector_settings_cpts_channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    channel: Mapped[str] = mapped_column(String(20))
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[str] = mapped_column(Text, default="{}")  # JSON: host, port, sender, ca_file, cert_file…
    updated_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
