"""Group sessions: a program's capacity, and allocations a group session's slot owns

Revision ID: b7d2e4f19a35
Revises: c41e7a9d2b60
Create Date: 2026-12-04 05:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "b7d2e4f19a35"
down_revision = "7d2e5b9c4a18"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session_programs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capacity", sa.Integer(), nullable=False, server_default="1"))
        batch_op.create_check_constraint(batch_op.f("ck_session_programs_capacity_range"), "capacity BETWEEN 1 AND 20")
    # The performer, room and kit of a group session are held once, by its slot; every existing hold stays its
    # appointment's. The exclusion constraint (PostgreSQL) covers both owners unchanged.
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.alter_column("appointment_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("slot_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_allocations_slot_id_slots"), "slots", ["slot_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index(batch_op.f("ix_allocations_slot_id"), ["slot_id"], unique=False)
        batch_op.create_check_constraint(
            batch_op.f("ck_allocations_one_owner"), "(appointment_id IS NULL) <> (slot_id IS NULL)"
        )


def downgrade() -> None:
    # A group session's shared holds have no appointment to go back to: they go (the sessions stay booked).
    op.execute("DELETE FROM allocations WHERE slot_id IS NOT NULL")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_allocations_one_owner"), type_="check")
        batch_op.drop_index(batch_op.f("ix_allocations_slot_id"))
        batch_op.drop_constraint(batch_op.f("fk_allocations_slot_id_slots"), type_="foreignkey")
        batch_op.drop_column("slot_id")
        batch_op.alter_column("appointment_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("session_programs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_session_programs_capacity_range"), type_="check")
        batch_op.drop_column("capacity")
