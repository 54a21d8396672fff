"""Satisfaction surveys of remote sessions; indexes the indicators read by

Revision ID: c41e7a9d2b60
Revises: 3c1f0a7d9e21
Create Date: 2026-12-04 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "c41e7a9d2b60"
down_revision = "3c1f0a7d9e21"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "satisfaction_surveys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ease", sa.Integer(), nullable=True),
        sa.Column("av_quality", sa.Integer(), nullable=True),
        sa.Column("listened", sa.Integer(), nullable=True),
        sa.Column("would_again", sa.Boolean(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.CheckConstraint("ease BETWEEN 1 AND 4", name=op.f("ck_satisfaction_surveys_ease_score")),
        sa.CheckConstraint("av_quality BETWEEN 1 AND 4", name=op.f("ck_satisfaction_surveys_av_quality_score")),
        sa.CheckConstraint("listened BETWEEN 1 AND 4", name=op.f("ck_satisfaction_surveys_listened_score")),
        sa.CheckConstraint(
            "answered_at IS NULL OR (ease IS NOT NULL AND av_quality IS NOT NULL AND listened IS NOT NULL"
            " AND would_again IS NOT NULL)",
            name=op.f("ck_satisfaction_surveys_answered_in_full"),
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointments.id"], name=op.f("fk_satisfaction_surveys_appointment_id_appointments")
        ),
        sa.ForeignKeyConstraint(
            ["cpts_id"], ["organisations.id"], name=op.f("fk_satisfaction_surveys_cpts_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_satisfaction_surveys")),
        sa.UniqueConstraint("appointment_id", name=op.f("uq_satisfaction_surveys_appointment_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_satisfaction_surveys_token_hash")),
    )
    with op.batch_alter_table("satisfaction_surveys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_satisfaction_surveys_cpts_id"), ["cpts_id"], unique=False)
    # The indicators of one CPTS's period read its rows only, whatever the other CPTS hold (P6).
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referrals_appointment_id"), ["appointment_id"], unique=False)
    with op.batch_alter_table("teleexpertise_requests", schema=None) as batch_op:
        batch_op.create_index("ix_teleexpertise_requests_cpts_submitted", ["cpts_id", "submitted_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("teleexpertise_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_teleexpertise_requests_cpts_submitted")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referrals_appointment_id"))
    with op.batch_alter_table("satisfaction_surveys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_satisfaction_surveys_cpts_id"))
    op.drop_table("satisfaction_surveys")
