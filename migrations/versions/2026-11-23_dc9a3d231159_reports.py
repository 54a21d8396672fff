"""Reports, téléexpertise requests, deliveries, connector settings; report delays, waived reports, letters

Revision ID: dc9a3d231159
Revises: eb7e39d6d353
Create Date: 2026-11-23 00:05:20.727372
"""

import sqlalchemy as sa
from alembic import op

revision = "dc9a3d231159"
down_revision = "eb7e39d6d353"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("updated_by_user_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cpts_id"], ["organisations.id"], name=op.f("fk_connector_settings_cpts_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_user_id"], ["users.id"], name=op.f("fk_connector_settings_updated_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connector_settings")),
        sa.UniqueConstraint("cpts_id", "channel", name="uq_connector_settings_cpts_channel"),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "teleconsultation",
                "telesoin",
                "teleexpertise",
                name="report_kind",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
                "draft",
                "signed",
                "sent",
                "acknowledged",
                name="report_state",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("root_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("performed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acts", sa.Text(), nullable=False),
        sa.Column("prescriptions", sa.Text(), nullable=True),
        sa.Column("participant_ids", sa.Text(), nullable=False),
        sa.Column("technical_incidents", sa.Text(), nullable=True),
        sa.Column("conclusion", sa.Text(), nullable=False),
        sa.Column("follow_up", sa.Text(), nullable=True),
        sa.Column("follow_up_modality", sa.String(length=40), nullable=True),
        sa.Column("copy_participants", sa.Boolean(), nullable=False),
        sa.Column("document_uid", sa.String(length=64), nullable=True),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=True),
        sa.Column("pdf_size", sa.Integer(), nullable=True),
        sa.Column("cda_sha256", sa.String(length=64), nullable=True),
        sa.Column("cda_size", sa.Integer(), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointments.id"], name=op.f("fk_reports_appointment_id_appointments")
        ),
        sa.ForeignKeyConstraint(["author_id"], ["professionals.id"], name=op.f("fk_reports_author_id_professionals")),
        sa.ForeignKeyConstraint(["cpts_id"], ["organisations.id"], name=op.f("fk_reports_cpts_id_organisations")),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"], name=op.f("fk_reports_created_by_user_id_users")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_reports_patient_id_patients")),
        sa.ForeignKeyConstraint(["root_id"], ["reports.id"], name=op.f("fk_reports_root_id_reports")),
        sa.ForeignKeyConstraint(["signed_by_user_id"], ["users.id"], name=op.f("fk_reports_signed_by_user_id_users")),
        sa.ForeignKeyConstraint(["supersedes_id"], ["reports.id"], name=op.f("fk_reports_supersedes_id_reports")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("document_uid", name="uq_reports_document_uid"),
        sa.UniqueConstraint("root_id", "version", name="uq_reports_root_version"),
        sa.UniqueConstraint("supersedes_id", name=op.f("uq_reports_supersedes_id")),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reports_appointment_id"), ["appointment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reports_author_id"), ["author_id"], unique=False)
        batch_op.create_index("ix_reports_cpts_state", ["cpts_id", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_reports_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reports_root_id"), ["root_id"], unique=False)

    op.create_table(
        "teleexpertise_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=True),
        sa.Column("specialty", sa.String(length=100), nullable=True),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "submitted",
                "assigned",
                "in_progress",
                "answered",
                "closed",
                "declined",
                "expired",
                name="teleexpertise_state",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("decline_reason", sa.String(length=500), nullable=True),
        sa.Column("answer_report_id", sa.Integer(), nullable=True),
        sa.Column("document_uid", sa.String(length=64), nullable=True),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=True),
        sa.Column("pdf_size", sa.Integer(), nullable=True),
        sa.Column("cda_sha256", sa.String(length=64), nullable=True),
        sa.Column("cda_size", sa.Integer(), nullable=True),
        sa.Column("over_cap_acknowledged", sa.Boolean(), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "expert_id IS NOT NULL OR specialty IS NOT NULL", name=op.f("ck_teleexpertise_requests_request_has_expert")
        ),
        sa.ForeignKeyConstraint(
            ["answer_report_id"], ["reports.id"], name=op.f("fk_teleexpertise_requests_answer_report_id_reports")
        ),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consents.id"], name=op.f("fk_teleexpertise_requests_consent_id_consents")
        ),
        sa.ForeignKeyConstraint(
            ["cpts_id"], ["organisations.id"], name=op.f("fk_teleexpertise_requests_cpts_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"], ["users.id"], name=op.f("fk_teleexpertise_requests_created_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["professionals.id"], name=op.f("fk_teleexpertise_requests_expert_id_professionals")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_teleexpertise_requests_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["professionals.id"], name=op.f("fk_teleexpertise_requests_requester_id_professionals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teleexpertise_requests")),
        sa.UniqueConstraint("document_uid", name=op.f("uq_teleexpertise_requests_document_uid")),
    )
    with op.batch_alter_table("teleexpertise_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_teleexpertise_requests_cpts_id"), ["cpts_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_teleexpertise_requests_expert_id"), ["expert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_teleexpertise_requests_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_teleexpertise_requests_requester_id"), ["requester_id"], unique=False)
        batch_op.create_index("ix_teleexpertise_requests_state_deadline", ["state", "deadline_at"], unique=False)

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("teleexpertise_request_id", sa.Integer(), nullable=True),
        sa.Column(
            "recipient_role",
            sa.Enum(
                "patient",
                "medecin_traitant",
                "prescripteur",
                "participant",
                "dmp",
                name="recipient_role",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("recipient_professional_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("outbox_message_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "queued",
                "sent",
                "acknowledged",
                "refused",
                "failed",
                name="delivery_state",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refusal_code", sa.String(length=10), nullable=True),
        sa.Column("refusal_text", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "report_id IS NOT NULL OR teleexpertise_request_id IS NOT NULL",
            name=op.f("ck_deliveries_delivery_has_document"),
        ),
        sa.ForeignKeyConstraint(["cpts_id"], ["organisations.id"], name=op.f("fk_deliveries_cpts_id_organisations")),
        sa.ForeignKeyConstraint(
            ["outbox_message_id"], ["outbox_messages.id"], name=op.f("fk_deliveries_outbox_message_id_outbox_messages")
        ),
        sa.ForeignKeyConstraint(
            ["recipient_professional_id"],
            ["professionals.id"],
            name=op.f("fk_deliveries_recipient_professional_id_professionals"),
        ),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"], name=op.f("fk_deliveries_report_id_reports")),
        sa.ForeignKeyConstraint(
            ["teleexpertise_request_id"],
            ["teleexpertise_requests.id"],
            name=op.f("fk_deliveries_teleexpertise_request_id_teleexpertise_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("message_id", name=op.f("uq_deliveries_message_id")),
        sa.UniqueConstraint("outbox_message_id", name=op.f("uq_deliveries_outbox_message_id")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deliveries_report_id"), ["report_id"], unique=False)
        batch_op.create_index("ix_deliveries_state_due", ["state", "due_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_deliveries_teleexpertise_request_id"), ["teleexpertise_request_id"], unique=False
        )

    op.create_table(
        "teleexpertise_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=60), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by_user_id", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("size > 0", name=op.f("ck_teleexpertise_attachments_teleexpertise_attachment_size")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["teleexpertise_requests.id"],
            name=op.f("fk_teleexpertise_attachments_request_id_teleexpertise_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_user_id"], ["users.id"], name=op.f("fk_teleexpertise_attachments_uploaded_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teleexpertise_attachments")),
    )
    with op.batch_alter_table("teleexpertise_attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_teleexpertise_attachments_request_id"), ["request_id"], unique=False)

    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report_waived_reason", sa.String(length=300), nullable=True))

    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("letter_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("letter_size", sa.Integer(), nullable=True))

    with op.batch_alter_table("session_programs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report_delays", sa.Text(), server_default="{}", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("session_programs", schema=None) as batch_op:
        batch_op.drop_column("report_delays")

    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_column("letter_size")
        batch_op.drop_column("letter_sha256")

    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("report_waived_reason")

    with op.batch_alter_table("teleexpertise_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_teleexpertise_attachments_request_id"))

    op.drop_table("teleexpertise_attachments")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_teleexpertise_request_id"))
        batch_op.drop_index("ix_deliveries_state_due")
        batch_op.drop_index(batch_op.f("ix_deliveries_report_id"))

    op.drop_table("deliveries")
    with op.batch_alter_table("teleexpertise_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_teleexpertise_requests_state_deadline")
        batch_op.drop_index(batch_op.f("ix_teleexpertise_requests_requester_id"))
        batch_op.drop_index(batch_op.f("ix_teleexpertise_requests_patient_id"))
        batch_op.drop_index(batch_op.f("ix_teleexpertise_requests_expert_id"))
        batch_op.drop_index(batch_op.f("ix_teleexpertise_requests_cpts_id"))

    op.drop_table("teleexpertise_requests")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reports_root_id"))
        batch_op.drop_index(batch_op.f("ix_reports_patient_id"))
        batch_op.drop_index("ix_reports_cpts_state")
        batch_op.drop_index(batch_op.f("ix_reports_author_id"))
        batch_op.drop_index(batch_op.f("ix_reports_appointment_id"))

    op.drop_table("reports")
    op.drop_table("connector_settings")
