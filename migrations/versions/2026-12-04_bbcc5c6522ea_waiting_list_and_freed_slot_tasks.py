"""Waiting list: the patients waiting for a program, and the coordinator's tasks when a slot frees

Revision ID: bbcc5c6522ea
Revises: c41e7a9d2b60
Create Date: 2026-12-04 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "bbcc5c6522ea"
down_revision = "c41e7a9d2b60"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "waiting_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=True),
        sa.Column(
            "urgency",
            sa.Enum(
                "urgent",
                "sous_15_jours",
                "des_que_possible",
                name="waiting_urgency",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("weekdays", sa.String(length=40), nullable=False),
        sa.Column(
            "place_kind",
            sa.Enum(
                "cabinet",
                "officine",
                "domicile",
                "lieu_dedie",
                "visite_programmee",
                name="place_kind",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=True,
        ),
        sa.Column("needs", sa.Text(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column(
            "state",
            sa.Enum("waiting", "booked", "withdrawn", name="waiting_state", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("withdraw_reason", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_user_id", sa.Integer(), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(state = 'booked') = (appointment_id IS NOT NULL)", name=op.f("ck_waiting_entries_booked_has_appointment")
        ),
        sa.CheckConstraint(
            "(state = 'waiting') = (resolved_at IS NULL)", name=op.f("ck_waiting_entries_resolved_when_not_waiting")
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointments.id"], name=op.f("fk_waiting_entries_appointment_id_appointments")
        ),
        sa.ForeignKeyConstraint(
            ["cpts_id"], ["organisations.id"], name=op.f("fk_waiting_entries_cpts_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"], ["users.id"], name=op.f("fk_waiting_entries_created_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_waiting_entries_patient_id_patients")),
        sa.ForeignKeyConstraint(
            ["program_id"], ["session_programs.id"], name=op.f("fk_waiting_entries_program_id_session_programs")
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"], name=op.f("fk_waiting_entries_referral_id_referrals")
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_user_id"], ["users.id"], name=op.f("fk_waiting_entries_resolved_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waiting_entries")),
    )
    with op.batch_alter_table("waiting_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_waiting_entries_cpts_id"), ["cpts_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_waiting_entries_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index("ix_waiting_entries_program_state", ["program_id", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_waiting_entries_referral_id"), ["referral_id"], unique=False)
        batch_op.create_index(
            "uq_waiting_entries_active",
            ["patient_id", "program_id"],
            unique=True,
            sqlite_where=sa.text("state = 'waiting'"),
            postgresql_where=sa.text("state = 'waiting'"),
        )

    op.create_table(
        "freed_slot_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column(
            "reason",
            sa.Enum("cancellation", "new_dates", name="freed_slot_reason", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("cancelled_appointment_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_user_id", sa.Integer(), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum("offered", "gone", name="freed_slot_outcome", native_enum=False, create_constraint=True),
            nullable=True,
        ),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(resolved_at IS NULL) = (outcome IS NULL)", name=op.f("ck_freed_slot_tasks_outcome_when_resolved")
        ),
        sa.ForeignKeyConstraint(
            ["cancelled_appointment_id"],
            ["appointments.id"],
            name=op.f("fk_freed_slot_tasks_cancelled_appointment_id_appointments"),
        ),
        sa.ForeignKeyConstraint(
            ["cpts_id"], ["organisations.id"], name=op.f("fk_freed_slot_tasks_cpts_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["waiting_entries.id"], name=op.f("fk_freed_slot_tasks_entry_id_waiting_entries")
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_user_id"], ["users.id"], name=op.f("fk_freed_slot_tasks_resolved_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"], ["slots.id"], name=op.f("fk_freed_slot_tasks_slot_id_slots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freed_slot_tasks")),
    )
    with op.batch_alter_table("freed_slot_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_freed_slot_tasks_cpts_open", ["cpts_id", "resolved_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_freed_slot_tasks_slot_id"), ["slot_id"], unique=False)
        batch_op.create_index(
            "uq_freed_slot_tasks_open",
            ["slot_id"],
            unique=True,
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("freed_slot_tasks", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_freed_slot_tasks_open",
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_freed_slot_tasks_slot_id"))
        batch_op.drop_index("ix_freed_slot_tasks_cpts_open")

    op.drop_table("freed_slot_tasks")
    with op.batch_alter_table("waiting_entries", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_waiting_entries_active",
            sqlite_where=sa.text("state = 'waiting'"),
            postgresql_where=sa.text("state = 'waiting'"),
        )
        batch_op.drop_index(batch_op.f("ix_waiting_entries_referral_id"))
        batch_op.drop_index("ix_waiting_entries_program_state")
        batch_op.drop_index(batch_op.f("ix_waiting_entries_patient_id"))
        batch_op.drop_index(batch_op.f("ix_waiting_entries_cpts_id"))

    op.drop_table("waiting_entries")
