"""Report rendering failures: counted and kept, for the coordinator's « en retard » list

`reports` gains `render_attempts` (each claim by a worker), `render_failed_at` and `render_error` (the last
failure's time and the exception's type, never its message): a report whose documents keep failing to render is
shown to the coordination and to its author instead of staying « en préparation » for good.

Revision ID: e8a4c2f6b1d3
Revises: 5c1d8e2a7b94
Create Date: 2026-12-04 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "e8a4c2f6b1d3"
down_revision = "5c1d8e2a7b94"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("render_attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("render_failed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("render_error", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("render_error")
        batch_op.drop_column("render_failed_at")
        batch_op.drop_column("render_attempts")
