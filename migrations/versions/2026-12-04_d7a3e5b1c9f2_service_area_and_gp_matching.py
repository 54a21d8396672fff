"""Professionals' working days; patients without a médecin traitant matched to GPs declaring capacity

Revision ID: d7a3e5b1c9f2
Revises: c41e7a9d2b60
Create Date: 2026-12-04 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "d7a3e5b1c9f2"
down_revision = "c41e7a9d2b60"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("professionals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("working_days", sa.String(length=7), server_default="1234567", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("professionals", schema=None) as batch_op:
        batch_op.drop_column("working_days")
