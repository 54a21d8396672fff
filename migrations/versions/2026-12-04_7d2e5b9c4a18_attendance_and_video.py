"""Attendance per participant, a state for a session postponed by its performer's absence, video rooms

Revision ID: 7d2e5b9c4a18
Revises: c41e7a9d2b60
Create Date: 2026-12-04 05:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "7d2e5b9c4a18"
down_revision = "d7a3e5b1c9f2"
branch_labels = None
depends_on = None

STATES = ("proposed", "confirmed", "checked_in", "done", "declined", "cancelled", "no_show", "degraded")


def _state_type(states: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*states, name="appointment_state", native_enum=False, create_constraint=True, length=10)


def _set_states(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    # The enum is a VARCHAR with a named CHECK: batch mode rebuilds the table on SQLite, ALTER on PostgreSQL.
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.alter_column("state", existing_type=_state_type(old), type_=_state_type(new), existing_nullable=False)


def upgrade() -> None:
    op.create_table(
        "attendances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("is_patient_present", sa.Boolean(), nullable=False),
        sa.Column("is_accompanying_present", sa.Boolean(), nullable=True),
        sa.Column("is_performer_present", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("recorded_by_user_id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointments.id"], name=op.f("fk_attendances_appointment_id_appointments")
        ),
        sa.ForeignKeyConstraint(["cpts_id"], ["organisations.id"], name=op.f("fk_attendances_cpts_id_organisations")),
        sa.ForeignKeyConstraint(
            ["recorded_by_user_id"], ["users.id"], name=op.f("fk_attendances_recorded_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendances")),
        sa.UniqueConstraint("appointment_id", name=op.f("uq_attendances_appointment_id")),
    )
    op.create_index(op.f("ix_attendances_cpts_id"), "attendances", ["cpts_id"], unique=False)
    op.create_table(
        "video_rooms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("room", sa.String(length=64), nullable=False),
        sa.Column("patient_token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("patient_link_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointments.id"], name=op.f("fk_video_rooms_appointment_id_appointments")
        ),
        sa.ForeignKeyConstraint(["cpts_id"], ["organisations.id"], name=op.f("fk_video_rooms_cpts_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_rooms")),
        sa.UniqueConstraint("appointment_id", name=op.f("uq_video_rooms_appointment_id")),
        sa.UniqueConstraint("patient_token_hash", name=op.f("uq_video_rooms_patient_token_hash")),
    )
    op.create_index(op.f("ix_video_rooms_cpts_id"), "video_rooms", ["cpts_id"], unique=False)
    with op.batch_alter_table("session_programs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("video_url_template", sa.String(length=300), nullable=True))
    _set_states(STATES, (*STATES, "postponed"))


def downgrade() -> None:
    # A postponed session reads as cancelled in the older code: it did not take place.
    op.execute("UPDATE appointments SET state = 'cancelled' WHERE state = 'postponed'")
    _set_states((*STATES, "postponed"), STATES)
    with op.batch_alter_table("session_programs", schema=None) as batch_op:
        batch_op.drop_column("video_url_template")
    op.drop_index(op.f("ix_video_rooms_cpts_id"), table_name="video_rooms")
    op.drop_table("video_rooms")
    op.drop_index(op.f("ix_attendances_cpts_id"), table_name="attendances")
    op.drop_table("attendances")
