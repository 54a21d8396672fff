"""Pathways: referrals, attachments, pathway templates, care pathways, eligibility

Revision ID: eb7e39d6d353
Revises: e3a57359dd17
Create Date: 2026-11-22 23:06:52.645631
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "eb7e39d6d353"
down_revision = "e3a57359dd17"
branch_labels = None
depends_on = None


GP, CARDIO, IDEL, KINE = "medecin_generaliste", "medecin_specialiste", "infirmier", "masseur_kinesitherapeute"
ASSISTED, IN_PERSON, TELESOIN = "assisted_teleconsultation", "in_person", "telesoin"
SHIPPED_TEMPLATES = [
    (
        "insuffisance_cardiaque",
        "Suivi de l'insuffisance cardiaque",
        "Adressage par le médecin traitant, téléconsultation cardiologique assistée par l'IDEL, échographie en "
        "présentiel si le cardiologue la demande, suivi assisté à 3 mois (seed 004, CPTS VIVEVAL).",
        [
            ("Adressage par le médecin traitant", IN_PERSON, GP, 0, None),
            ("Téléconsultation cardiologique assistée", ASSISTED, CARDIO, 14, None),
            ("Échocardiographie en présentiel", IN_PERSON, CARDIO, 30, "si le cardiologue la demande"),
            ("Suivi à 3 mois en téléconsultation assistée", ASSISTED, CARDIO, 90, None),
        ],
    ),
    (
        "residents_ehpad",
        "Résidents d'EHPAD",
        "Deux téléconsultations assistées puis une consultation en présentiel, en boucle (seed 004).",
        [
            ("Téléconsultation assistée", ASSISTED, GP, 0, None),
            ("Téléconsultation assistée", ASSISTED, GP, 30, None),
            ("Consultation en présentiel", IN_PERSON, GP, 30, "puis le cycle recommence"),
        ],
    ),
    (
        "post_avc",
        "Télérééducation post-AVC",
        "Première séance en présentiel, puis télésoin en alternance avec le présentiel : un suivi exclusivement "
        "à distance n'est pas recommandé (HAS, seed 002).",
        [
            ("Bilan et première séance en présentiel", IN_PERSON, KINE, 0, None),
            ("Séance de télésoin", TELESOIN, KINE, 7, None),
            ("Séance en présentiel", IN_PERSON, KINE, 7, None),
            ("Séance de télésoin", TELESOIN, KINE, 7, None),
            ("Séance en présentiel et point d'étape", IN_PERSON, KINE, 7, None),
        ],
    ),
    (
        "reeducation_msk",
        "Télérééducation musculo-squelettique",
        "Bilan en présentiel, télésoin en alternance avec le présentiel (seeds 000, 001).",
        [
            ("Bilan et première séance en présentiel", IN_PERSON, KINE, 0, None),
            ("Séance de télésoin", TELESOIN, KINE, 7, None),
            ("Séance de télésoin", TELESOIN, KINE, 7, None),
            ("Séance en présentiel", IN_PERSON, KINE, 7, None),
        ],
    ),
    (
        "rehabilitation_bpco",
        "Réhabilitation respiratoire (BPCO)",
        "Réentraînement à l'effort avec le kiné, en présentiel puis en télésoin, et surveillance infirmière à "
        "distance après une exacerbation (seeds 000, 004).",
        [
            ("Bilan et première séance en présentiel", IN_PERSON, KINE, 0, None),
            ("Séance de télésoin", TELESOIN, KINE, 7, None),
            ("Séance en présentiel", IN_PERSON, KINE, 7, None),
            ("Surveillance infirmière à distance", TELESOIN, IDEL, 14, "après une exacerbation"),
        ],
    ),
]


def upgrade() -> None:
    op.create_table(
        "pathway_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=True),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cpts_id"], ["organisations.id"], name=op.f("fk_pathway_templates_cpts_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pathway_templates")),
        sa.UniqueConstraint("cpts_id", "code", name="uq_pathway_templates_cpts_code"),
    )
    op.create_table(
        "pathway_step_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "modality",
            sa.Enum(
                "in_person",
                "assisted_teleconsultation",
                "telesoin",
                "teleexpertise",
                name="modality",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("profession", sa.String(length=40), nullable=False),
        sa.Column("interval_days", sa.Integer(), nullable=False),
        sa.Column("condition", sa.String(length=300), nullable=True),
        sa.CheckConstraint("interval_days >= 0", name=op.f("ck_pathway_step_templates_interval_days")),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["pathway_templates.id"],
            name=op.f("fk_pathway_step_templates_template_id_pathway_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pathway_step_templates")),
        sa.UniqueConstraint("template_id", "position", name="uq_pathway_step_templates_position"),
    )
    op.create_table(
        "eligibility_assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("assessed_by_user_id", sa.Integer(), nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "modality",
            sa.Enum(
                "in_person",
                "assisted_teleconsultation",
                "telesoin",
                "teleexpertise",
                name="assessed_modality",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("answers", sa.Text(), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "eligible",
                "assisted",
                "ineligible",
                name="eligibility_outcome",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("alternative", sa.String(length=40), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assessed_by_user_id"], ["users.id"], name=op.f("fk_eligibility_assessments_assessed_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_eligibility_assessments_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eligibility_assessments")),
    )
    with op.batch_alter_table("eligibility_assessments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eligibility_assessments_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=False),
        sa.Column("target_program_id", sa.Integer(), nullable=True),
        sa.Column("target_specialist_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("current_treatment", sa.Text(), nullable=True),
        sa.Column("history", sa.Text(), nullable=True),
        sa.Column("free_text", sa.Text(), nullable=True),
        sa.Column(
            "urgency",
            sa.Enum("routine", "soon", "urgent", name="urgency", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("needs", sa.Text(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "draft",
                "submitted",
                "accepted",
                "scheduled",
                "done",
                "rejected",
                "cancelled",
                name="referral_state",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("rejection_reason", sa.String(length=500), nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointments.id"], name=op.f("fk_referrals_appointment_id_appointments")
        ),
        sa.ForeignKeyConstraint(["author_id"], ["professionals.id"], name=op.f("fk_referrals_author_id_professionals")),
        sa.ForeignKeyConstraint(["consent_id"], ["consents.id"], name=op.f("fk_referrals_consent_id_consents")),
        sa.ForeignKeyConstraint(["cpts_id"], ["organisations.id"], name=op.f("fk_referrals_cpts_id_organisations")),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"], ["users.id"], name=op.f("fk_referrals_created_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_referrals_patient_id_patients")),
        sa.ForeignKeyConstraint(
            ["target_program_id"], ["session_programs.id"], name=op.f("fk_referrals_target_program_id_session_programs")
        ),
        sa.ForeignKeyConstraint(
            ["target_specialist_id"], ["professionals.id"], name=op.f("fk_referrals_target_specialist_id_professionals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referrals_author_id"), ["author_id"], unique=False)
        batch_op.create_index("ix_referrals_cpts_state", ["cpts_id", "state", "submitted_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_referrals_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_referrals_target_specialist_id"), ["target_specialist_id"], unique=False)

    op.create_table(
        "care_pathways",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=True),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "active", "completed", "stopped", name="care_pathway_state", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("stop_reason", sa.String(length=300), nullable=True),
        sa.Column("created_by_user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["cpts_id"], ["organisations.id"], name=op.f("fk_care_pathways_cpts_id_organisations")),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"], ["users.id"], name=op.f("fk_care_pathways_created_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_care_pathways_patient_id_patients")),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"], name=op.f("fk_care_pathways_referral_id_referrals")),
        sa.ForeignKeyConstraint(
            ["template_id"], ["pathway_templates.id"], name=op.f("fk_care_pathways_template_id_pathway_templates")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_pathways")),
    )
    with op.batch_alter_table("care_pathways", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_care_pathways_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "referral_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "biology_prescription",
                "results",
                "ecg",
                "other",
                name="attachment_kind",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=60), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by_user_id", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("size > 0", name=op.f("ck_referral_attachments_attachment_size")),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_referral_attachments_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_user_id"], ["users.id"], name=op.f("fk_referral_attachments_uploaded_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_attachments")),
    )
    with op.batch_alter_table("referral_attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referral_attachments_referral_id"), ["referral_id"], unique=False)

    op.create_table(
        "care_pathway_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pathway_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "modality",
            sa.Enum(
                "in_person",
                "assisted_teleconsultation",
                "telesoin",
                "teleexpertise",
                name="step_modality",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("profession", sa.String(length=40), nullable=False),
        sa.Column("condition", sa.String(length=300), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "planned", "booked", "done", "skipped", name="step_state", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("skip_reason", sa.String(length=300), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("referral_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointments.id"], name=op.f("fk_care_pathway_steps_appointment_id_appointments")
        ),
        sa.ForeignKeyConstraint(
            ["pathway_id"],
            ["care_pathways.id"],
            name=op.f("fk_care_pathway_steps_pathway_id_care_pathways"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"], name=op.f("fk_care_pathway_steps_referral_id_referrals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_pathway_steps")),
    )
    with op.batch_alter_table("care_pathway_steps", schema=None) as batch_op:
        batch_op.create_index("ix_care_pathway_steps_due", ["state", "due_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_care_pathway_steps_pathway_id"), ["pathway_id"], unique=False)

    # The shipped pathway templates (issue 4, seeds 002–004): rows a CPTS may copy and adapt.
    templates = sa.table(
        "pathway_templates",
        sa.column("id", sa.Integer),
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("description", sa.Text),
        sa.column("is_active", sa.Boolean),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    steps = sa.table(
        "pathway_step_templates",
        sa.column("template_id", sa.Integer),
        sa.column("position", sa.Integer),
        sa.column("name", sa.String),
        sa.column("modality", sa.String),
        sa.column("profession", sa.String),
        sa.column("interval_days", sa.Integer),
        sa.column("condition", sa.String),
    )
    now = dt.datetime.now(dt.UTC)
    for template_id, (code, name, description, template_steps) in enumerate(SHIPPED_TEMPLATES, start=1):
        op.bulk_insert(
            templates,
            [
                {
                    "id": template_id,
                    "code": code,
                    "name": name,
                    "description": description,
                    "is_active": True,
                    "created_at": now,
                }
            ],
        )
        op.bulk_insert(
            steps,
            [
                {
                    "template_id": template_id,
                    "position": position,
                    "name": step,
                    "modality": modality,
                    "profession": profession,
                    "interval_days": days,
                    "condition": condition,
                }
                for position, (step, modality, profession, days, condition) in enumerate(template_steps, start=1)
            ],
        )
    if op.get_bind().dialect.name == "postgresql":
        # The ids were given explicitly: move the sequence past them.
        op.execute("SELECT setval('pathway_templates_id_seq', (SELECT max(id) FROM pathway_templates))")


def downgrade() -> None:
    with op.batch_alter_table("care_pathway_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_care_pathway_steps_pathway_id"))
        batch_op.drop_index("ix_care_pathway_steps_due")

    op.drop_table("care_pathway_steps")
    with op.batch_alter_table("referral_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_attachments_referral_id"))

    op.drop_table("referral_attachments")
    with op.batch_alter_table("care_pathways", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_care_pathways_patient_id"))

    op.drop_table("care_pathways")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referrals_target_specialist_id"))
        batch_op.drop_index(batch_op.f("ix_referrals_patient_id"))
        batch_op.drop_index("ix_referrals_cpts_state")
        batch_op.drop_index(batch_op.f("ix_referrals_author_id"))

    op.drop_table("referrals")
    with op.batch_alter_table("eligibility_assessments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eligibility_assessments_patient_id"))

    op.drop_table("eligibility_assessments")
    op.drop_table("pathway_step_templates")
    op.drop_table("pathway_templates")
