"""Pro Santé Connect: when a user first logged in through PSC, and the CPTS's choice to refuse their password

Revision ID: 5d2f8e1c7a90
Revises: bbcc5c6522ea
Create Date: 2026-12-04 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "5d2f8e1c7a90"
down_revision = "b7d2e4f19a35"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("psc_linked_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_password_refused_to_psc_users", sa.Boolean(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("is_password_refused_to_psc_users")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("psc_linked_at")
