"""Fees: tariffs, fee entries, declared activity

Revision ID: e3a57359dd17
Revises: d909fa7423b1
Create Date: 2026-11-22 22:11:42.344931
"""

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "e3a57359dd17"
down_revision = "d909fa7423b1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tariffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("profession", sa.String(length=40), nullable=True),
        sa.Column(
            "unit",
            sa.Enum("act", "key_letter", "block", name="tariff_unit", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("amount", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_until", sa.Date(), nullable=True),
        sa.Column("block_size", sa.Integer(), nullable=True),
        sa.Column("yearly_cap_amount", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("yearly_cap_per_patient", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_tariffs_tariff_amount")),
        sa.CheckConstraint(
            "effective_until IS NULL OR effective_until >= effective_from", name=op.f("ck_tariffs_tariff_period")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariffs")),
    )
    with op.batch_alter_table("tariffs", schema=None) as batch_op:
        batch_op.create_index("ix_tariffs_code_from", ["code", "effective_from"], unique=False)

    op.create_table(
        "declared_activities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("professional_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("recorded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_declared_activities_activity_amount")),
        sa.CheckConstraint("month BETWEEN 1 AND 12", name=op.f("ck_declared_activities_month_range")),
        sa.ForeignKeyConstraint(
            ["professional_id"], ["professionals.id"], name=op.f("fk_declared_activities_professional_id_professionals")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_user_id"], ["users.id"], name=op.f("fk_declared_activities_recorded_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_declared_activities")),
        sa.UniqueConstraint("professional_id", "year", "month", name="uq_declared_activities_month"),
    )
    op.create_table(
        "fee_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("professional_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("tariff_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("act_on", sa.Date(), nullable=False),
        sa.Column("coefficient", sa.Numeric(precision=6, scale=2), nullable=False),
        sa.Column("amount", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "accrued", "declared", "paid", "cancelled", name="fee_status", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("is_remote_care", sa.Boolean(), nullable=False),
        sa.Column("prescriber_rpps", sa.String(length=11), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.Column("cancel_reason", sa.String(length=300), nullable=True),
        sa.Column("source_key", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_fee_entries_fee_amount")),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointments.id"], name=op.f("fk_fee_entries_appointment_id_appointments")
        ),
        sa.ForeignKeyConstraint(["cpts_id"], ["organisations.id"], name=op.f("fk_fee_entries_cpts_id_organisations")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_fee_entries_patient_id_patients")),
        sa.ForeignKeyConstraint(
            ["professional_id"], ["professionals.id"], name=op.f("fk_fee_entries_professional_id_professionals")
        ),
        sa.ForeignKeyConstraint(["tariff_id"], ["tariffs.id"], name=op.f("fk_fee_entries_tariff_id_tariffs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fee_entries")),
        sa.UniqueConstraint("source_key", name="uq_fee_entries_source_key"),
    )
    with op.batch_alter_table("fee_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fee_entries_appointment_id"), ["appointment_id"], unique=False)
        batch_op.create_index("ix_fee_entries_cpts_day", ["cpts_id", "act_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_fee_entries_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index("ix_fee_entries_professional_day", ["professional_id", "act_on"], unique=False)

    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("telesoin_act", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("act_coefficient", sa.Numeric(precision=5, scale=2), nullable=True))
        batch_op.add_column(sa.Column("last_in_person_dressing_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("remote_share_override_reason", sa.String(length=300), nullable=True))

    # The starting tariffs of DESIGN.md (seeds 000, 003, 004); the admin corrects them by adding rows.
    tariffs = sa.table(
        "tariffs",
        sa.column("code", sa.String),
        sa.column("label", sa.String),
        sa.column("profession", sa.String),
        sa.column("unit", sa.String),
        sa.column("amount", sa.Numeric),
        sa.column("effective_from", sa.Date),
        sa.column("effective_until", sa.Date),
        sa.column("block_size", sa.Integer),
        sa.column("yearly_cap_amount", sa.Numeric),
        sa.column("yearly_cap_per_patient", sa.Integer),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    start = dt.date(2020, 1, 1)
    rows = [
        ("TCG", "Téléconsultation, médecin généraliste", "medecin_generaliste", "act", "25.00", start, None),
        ("TC", "Téléconsultation, médecin", "medecin_specialiste", "act", "25.00", start, None),
        (
            "TLS",
            "Accompagnement de téléconsultation lors d'un soin infirmier prévu",
            "infirmier",
            "act",
            "10.00",
            start,
            None,
        ),
        (
            "TLL",
            "Accompagnement de téléconsultation, isolé, dans un lieu dédié",
            "infirmier",
            "act",
            "12.00",
            start,
            None,
        ),
        ("TLD", "Accompagnement de téléconsultation organisé à domicile", "infirmier", "act", "15.00", start, None),
        (
            "TLM",
            "Assistance aux téléconsultations en officine (par bloc de 5)",
            "pharmacien",
            "block",
            "25.00",
            start,
            None,
        ),
        ("RQD", "Téléexpertise, professionnel requérant", None, "act", "10.00", start, None),
        ("TE2", "Téléexpertise, médecin requis", None, "act", "20.00", start, dt.date(2025, 12, 31)),
        ("TE2", "Téléexpertise, médecin requis", None, "act", "23.00", dt.date(2026, 1, 1), None),
        (
            "TMK",
            "Télésoin masso-kinésithérapie (valeur de la lettre clé)",
            "masseur_kinesitherapeute",
            "key_letter",
            "2.15",
            dt.date(2024, 2, 9),
            None,
        ),
        (
            "TMI",
            "Télésoin infirmier (valeur de la lettre clé, comme AMI)",
            "infirmier",
            "key_letter",
            "3.15",
            dt.date(2022, 7, 27),
            None,
        ),
    ]
    caps = {"TLM": (5, "750.00", None), "RQD": (None, None, 4), "TE2": (None, None, 4)}
    now = dt.datetime.now(dt.UTC)
    op.bulk_insert(
        tariffs,
        [
            {
                "code": code,
                "label": label,
                "profession": profession,
                "unit": unit,
                "amount": Decimal(amount),
                "effective_from": since,
                "effective_until": until,
                "block_size": caps.get(code, (None, None, None))[0],
                "yearly_cap_amount": Decimal(caps[code][1]) if caps.get(code, (None, None))[1] else None,
                "yearly_cap_per_patient": caps.get(code, (None, None, None))[2],
                "created_at": now,
            }
            for code, label, profession, unit, amount, since, until in rows
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        # Two versions of one code are never in force on the same day.
        op.execute(
            "ALTER TABLE tariffs ADD CONSTRAINT ex_tariffs_one_version_per_day EXCLUDE USING gist "
            "(code WITH =, daterange(effective_from, COALESCE(effective_until, 'infinity'::date), '[]') WITH &&)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE tariffs DROP CONSTRAINT ex_tariffs_one_version_per_day")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("remote_share_override_reason")
        batch_op.drop_column("last_in_person_dressing_on")
        batch_op.drop_column("act_coefficient")
        batch_op.drop_column("telesoin_act")

    with op.batch_alter_table("fee_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_fee_entries_professional_day")
        batch_op.drop_index(batch_op.f("ix_fee_entries_patient_id"))
        batch_op.drop_index("ix_fee_entries_cpts_day")
        batch_op.drop_index(batch_op.f("ix_fee_entries_appointment_id"))

    op.drop_table("fee_entries")
    op.drop_table("declared_activities")
    with op.batch_alter_table("tariffs", schema=None) as batch_op:
        batch_op.drop_index("ix_tariffs_code_from")

    op.drop_table("tariffs")
