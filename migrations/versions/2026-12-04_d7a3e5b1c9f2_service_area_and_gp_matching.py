"""Professionals' working days; patients without a médecin traitant matched to GPs declaring capacity

Revision ID: d7a3e5b1c9f2
Revises: c41e7a9d2b60
Create Date: 2026-12-04 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "d7a3e5b1c9f2"
down_revision = "bbcc5c6522ea"
branch_labels = None
depends_on = None


WAITING = sa.text("state = 'en_attente'")


def upgrade() -> None:
    with op.batch_alter_table("professionals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("working_days", sa.String(length=7), server_default="1234567", nullable=False))
        batch_op.add_column(sa.Column("new_patient_capacity", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_check_constraint(
            op.f("ck_professionals_new_patient_capacity_not_negative"), "new_patient_capacity >= 0"
        )
    op.create_table(
        "gp_searches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "en_attente",
                "medecin_trouve",
                "trouve_ailleurs",
                "retire",
                name="gp_search_state",
                native_enum=False,
                create_constraint=True,
                length=15,
            ),
            nullable=False,
        ),
        sa.Column("consent_on", sa.Date(), nullable=False),
        sa.Column(
            "consent_method",
            sa.Enum(
                "oral",
                "written",
                "electronic",
                name="gp_search_consent_method",
                native_enum=False,
                create_constraint=True,
                length=10,
            ),
            nullable=False,
        ),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entered_by_user_id", sa.Integer(), nullable=False),
        sa.Column("has_ald", sa.Boolean(), nullable=False),
        sa.Column("chronic_conditions", sa.Text(), nullable=False),
        sa.Column("hospitalised_on", sa.Date(), nullable=True),
        sa.Column("is_isolated", sa.Boolean(), nullable=False),
        sa.Column("other_fragility", sa.String(length=300), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("close_reason", sa.String(length=300), nullable=True),
        sa.Column("gp_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["closed_by_user_id"], ["users.id"], name=op.f("fk_gp_searches_closed_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(["cpts_id"], ["organisations.id"], name=op.f("fk_gp_searches_cpts_id_organisations")),
        sa.ForeignKeyConstraint(
            ["entered_by_user_id"], ["users.id"], name=op.f("fk_gp_searches_entered_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(["gp_id"], ["professionals.id"], name=op.f("fk_gp_searches_gp_id_professionals")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_gp_searches_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gp_searches")),
    )
    op.create_index(op.f("ix_gp_searches_cpts_id"), "gp_searches", ["cpts_id"])
    op.create_index(op.f("ix_gp_searches_patient_id"), "gp_searches", ["patient_id"])
    op.create_index(
        "uq_gp_searches_one_waiting",
        "gp_searches",
        ["patient_id"],
        unique=True,
        sqlite_where=WAITING,
        postgresql_where=WAITING,
    )
    op.create_table(
        "gp_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("search_id", sa.Integer(), nullable=False),
        sa.Column("gp_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "en_attente",
                "acceptee",
                "refusee",
                "retiree",
                name="gp_proposal_state",
                native_enum=False,
                create_constraint=True,
                length=10,
            ),
            nullable=False,
        ),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("proposed_by_user_id", sa.Integer(), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["gp_id"], ["professionals.id"], name=op.f("fk_gp_proposals_gp_id_professionals")),
        sa.ForeignKeyConstraint(
            ["proposed_by_user_id"], ["users.id"], name=op.f("fk_gp_proposals_proposed_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["search_id"], ["gp_searches.id"], name=op.f("fk_gp_proposals_search_id_gp_searches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gp_proposals")),
    )
    op.create_index(op.f("ix_gp_proposals_gp_id"), "gp_proposals", ["gp_id"])
    op.create_index(op.f("ix_gp_proposals_search_id"), "gp_proposals", ["search_id"])


def downgrade() -> None:
    op.drop_table("gp_proposals")
    op.drop_table("gp_searches")
    with op.batch_alter_table("professionals", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_professionals_new_patient_capacity_not_negative"), type_="check")
        batch_op.drop_column("new_patient_capacity")
        batch_op.drop_column("working_days")
