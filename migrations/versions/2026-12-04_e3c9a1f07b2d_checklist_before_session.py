"""The HAS pre-session checklist saved on its own, before the session: who saved it and when

Revision ID: e3c9a1f07b2d
Revises: 5b45b3b442a8
Create Date: 2026-12-04 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "e3c9a1f07b2d"
down_revision = "5b45b3b442a8"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checklist_saved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("checklist_saved_by_user_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_appointments_checklist_saved_by_user_id_users"),
            "users",
            ["checklist_saved_by_user_id"],
            ["id"],
        )
    # Sessions done before this revision saved their checklist with the completion: dated by it, by nobody known.
    op.execute("UPDATE appointments SET checklist_saved_at = updated_at WHERE checklist <> '{}'")


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_appointments_checklist_saved_by_user_id_users"), type_="foreignkey")
        batch_op.drop_column("checklist_saved_by_user_id")
        batch_op.drop_column("checklist_saved_at")
