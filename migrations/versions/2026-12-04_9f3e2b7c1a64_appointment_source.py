"""Appointments booked through the Service d'accès aux soins: their source and the SAS's id of the booking

Revision ID: 9f3e2b7c1a64
Revises: bbcc5c6522ea
Create Date: 2026-12-04 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "9f3e2b7c1a64"
down_revision = "5d2f8e1c7a90"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=10), server_default="hub", nullable=False))
        batch_op.add_column(sa.Column("external_id", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_appointments_source_external_id", ["source", "external_id"])


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_constraint("uq_appointments_source_external_id", type_="unique")
        batch_op.drop_column("external_id")
        batch_op.drop_column("source")
