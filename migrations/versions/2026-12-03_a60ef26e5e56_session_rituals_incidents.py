"""Kiné télésoin session rituals on the appointment; session incidents (technical, EI, EIG)

Revision ID: a60ef26e5e56
Revises: 802358118d73
Create Date: 2026-12-03 18:23:10.694289
"""

import sqlalchemy as sa
from alembic import op

revision = "a60ef26e5e56"
down_revision = "802358118d73"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "connection_lost",
                "phone_fallback",
                "equipment_failure",
                "adverse_event",
                "serious_adverse_event",
                name="incident_kind",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "severity",
            sa.Enum("minor", "moderate", "severe", name="incident_severity", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("recorded_by_user_id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind != 'serious_adverse_event' OR severity = 'severe'", name=op.f("ck_session_incidents_eig_is_severe")
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointments.id"], name=op.f("fk_session_incidents_appointment_id_appointments")
        ),
        sa.ForeignKeyConstraint(
            ["cpts_id"], ["organisations.id"], name=op.f("fk_session_incidents_cpts_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_user_id"], ["users.id"], name=op.f("fk_session_incidents_recorded_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_incidents")),
    )
    with op.batch_alter_table("session_incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_incidents_appointment_id"), ["appointment_id"], unique=False)
        batch_op.create_index("ix_session_incidents_cpts_time", ["cpts_id", "recorded_at"], unique=False)

    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rituals", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("rituals_recorded_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("rituals_recorded_at")
        batch_op.drop_column("rituals")

    with op.batch_alter_table("session_incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_session_incidents_cpts_time")
        batch_op.drop_index(batch_op.f("ix_session_incidents_appointment_id"))

    op.drop_table("session_incidents")
