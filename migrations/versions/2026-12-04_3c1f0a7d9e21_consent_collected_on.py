"""Consents dated by the day they were collected; the time only when it is known

Revision ID: 3c1f0a7d9e21
Revises: c4e1f07a9b2d
Create Date: 2026-12-04 00:00:00
"""

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "3c1f0a7d9e21"
down_revision = "c4e1f07a9b2d"
branch_labels = None
depends_on = None

# The territory's zone when the consents were recorded (the hub's default, HUB_TIMEZONE): a consent's day is
# its wall-clock day there.
ZONE = ZoneInfo("Europe/Paris")
consents = sa.table(
    "consents",
    sa.column("id", sa.Integer),
    sa.column("collected_at", sa.DateTime(timezone=True)),
    sa.column("collected_on", sa.Date),
)


def _local_day(value) -> dt.date:
    value = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(ZONE).date()


def upgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("collected_on", sa.Date(), nullable=True))
    bind = op.get_bind()
    for consent_id, collected_at in bind.execute(sa.select(consents.c.id, consents.c.collected_at)).all():
        bind.execute(consents.update().where(consents.c.id == consent_id).values(collected_on=_local_day(collected_at)))
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.alter_column("collected_on", existing_type=sa.Date(), nullable=False)
        batch_op.alter_column("collected_at", existing_type=sa.DateTime(timezone=True), nullable=True)


def downgrade() -> None:
    # A consent known by its day only was recorded at noon, wall time, before this revision.
    bind = op.get_bind()
    undated = bind.execute(sa.select(consents.c.id, consents.c.collected_on).where(consents.c.collected_at.is_(None)))
    for consent_id, collected_on in undated.all():
        noon = dt.datetime.combine(collected_on, dt.time(12), ZONE).astimezone(dt.UTC)
        value = noon.replace(tzinfo=None) if bind.dialect.name == "sqlite" else noon
        bind.execute(consents.update().where(consents.c.id == consent_id).values(collected_at=value))
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.alter_column("collected_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.drop_column("collected_on")
