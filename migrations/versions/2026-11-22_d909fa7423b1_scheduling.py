"""Scheduling: programs, slots, appointments, allocations, offers, feeds, jobs, outbox

Revision ID: d909fa7423b1
Revises: a6cc5eae782f
Create Date: 2026-11-22 21:57:25.492471
"""

import sqlalchemy as sa
from alembic import op

revision = "d909fa7423b1"
down_revision = "a6cc5eae782f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("professionals") as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("served_communes", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("patients") as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=80), nullable=False),
        sa.Column("period", sa.String(length=40), nullable=False),
        sa.Column("worker", sa.String(length=120), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
        sa.UniqueConstraint("job", "period", name="uq_job_runs_job_period"),
    )
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_leases")),
    )
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column("group_key", sa.String(length=120), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending", "sending", "sent", "dead", name="outbox_state", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("receipt", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["cpts_id"], ["organisations.id"], name=op.f("fk_outbox_messages_cpts_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_messages_idempotency_key")),
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_messages_cpts_id"), ["cpts_id"], unique=False)
        batch_op.create_index("ix_outbox_messages_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_messages_group_key"), ["group_key"], unique=False)

    op.create_table(
        "resources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum("room", "kit", name="resource_kind", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["cpts_id"], ["organisations.id"], name=op.f("fk_resources_cpts_id_organisations")),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name=op.f("fk_resources_organisation_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
    )
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_resources_cpts_id"), ["cpts_id"], unique=False)

    op.create_table(
        "calendar_feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("professional_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("show_patient_initials", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["professional_id"], ["professionals.id"], name=op.f("fk_calendar_feeds_professional_id_professionals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_feeds")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_calendar_feeds_token_hash")),
    )
    with op.batch_alter_table("calendar_feeds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calendar_feeds_professional_id"), ["professional_id"], unique=False)

    op.create_table(
        "session_programs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "assisted_teleconsultation", "telesoin", name="program_kind", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("performer_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("room_id", sa.Integer(), nullable=True),
        sa.Column("kit_id", sa.Integer(), nullable=True),
        sa.Column("rrule", sa.String(length=300), nullable=False),
        sa.Column("start_local", sa.DateTime(), nullable=False),
        sa.Column("zone", sa.String(length=60), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("slot_count", sa.Integer(), nullable=False),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("slot_interval_minutes", sa.Integer(), nullable=True),
        sa.Column("accompaniment_before_minutes", sa.Integer(), nullable=False),
        sa.Column("accompaniment_after_minutes", sa.Integer(), nullable=False),
        sa.Column("skip_public_holidays", sa.Boolean(), nullable=False),
        sa.Column("exdates", sa.Text(), nullable=False),
        sa.Column("own_idel_delay_minutes", sa.Integer(), nullable=False),
        sa.Column("horizon_weeks", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "accompaniment_after_minutes BETWEEN 0 AND 120", name=op.f("ck_session_programs_after_range")
        ),
        sa.CheckConstraint(
            "accompaniment_before_minutes BETWEEN 0 AND 120", name=op.f("ck_session_programs_before_range")
        ),
        sa.CheckConstraint("slot_count BETWEEN 1 AND 40", name=op.f("ck_session_programs_slot_count_range")),
        sa.CheckConstraint("slot_minutes BETWEEN 5 AND 240", name=op.f("ck_session_programs_slot_minutes_range")),
        sa.CheckConstraint(
            "slot_interval_minutes IS NULL OR slot_interval_minutes >= slot_minutes",
            name=op.f("ck_session_programs_interval_fits"),
        ),
        sa.CheckConstraint(
            "valid_until IS NULL OR valid_until >= valid_from", name=op.f("ck_session_programs_validity_order")
        ),
        sa.ForeignKeyConstraint(
            ["cpts_id"], ["organisations.id"], name=op.f("fk_session_programs_cpts_id_organisations")
        ),
        sa.ForeignKeyConstraint(["kit_id"], ["resources.id"], name=op.f("fk_session_programs_kit_id_resources")),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name=op.f("fk_session_programs_organisation_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["performer_id"], ["professionals.id"], name=op.f("fk_session_programs_performer_id_professionals")
        ),
        sa.ForeignKeyConstraint(["room_id"], ["resources.id"], name=op.f("fk_session_programs_room_id_resources")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_programs")),
    )
    with op.batch_alter_table("session_programs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_programs_cpts_id"), ["cpts_id"], unique=False)

    op.create_table(
        "idempotent_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_idempotent_requests_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotent_requests")),
        sa.UniqueConstraint("user_id", "key", name="uq_idempotent_requests_user_key"),
    )
    op.create_table(
        "program_closures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.CheckConstraint("last_day >= first_day", name=op.f("ck_program_closures_closure_order")),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["session_programs.id"],
            name=op.f("fk_program_closures_program_id_session_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program_closures")),
    )
    with op.batch_alter_table("program_closures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_program_closures_program_id"), ["program_id"], unique=False)

    op.create_table(
        "slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("occurrence_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "state",
            sa.Enum("open", "cancelled", name="slot_state", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("is_exception", sa.Boolean(), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_slots_slot_order")),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["session_programs.id"],
            name=op.f("fk_slots_program_id_session_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slots")),
        sa.UniqueConstraint("program_id", "starts_at", name="uq_slots_program_start"),
    )
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.create_index("ix_slots_program_time", ["program_id", "starts_at"], unique=False)

    op.create_table(
        "appointments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpts_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "assisted_teleconsultation",
                "telesoin",
                "in_person",
                name="appointment_kind",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
                "proposed",
                "confirmed",
                "checked_in",
                "done",
                "declined",
                "cancelled",
                "no_show",
                "degraded",
                name="appointment_state",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=True),
        sa.Column("program_id", sa.Integer(), nullable=True),
        sa.Column("performer_id", sa.Integer(), nullable=False),
        sa.Column("accompanying_id", sa.Integer(), nullable=True),
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
            nullable=False,
        ),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accompaniment_starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accompaniment_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("room_id", sa.Integer(), nullable=True),
        sa.Column("kit_id", sa.Integer(), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("declined_reason", sa.String(length=300), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by_user_id", sa.Integer(), nullable=True),
        sa.Column("cancel_reason", sa.String(length=300), nullable=True),
        sa.Column("is_late_cancellation", sa.Boolean(), nullable=False),
        sa.Column("no_show_recorded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("identity_checked_by_user_id", sa.Integer(), nullable=True),
        sa.Column("identity_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("identity_check_method", sa.String(length=40), nullable=True),
        sa.Column("patient_location", sa.String(length=300), nullable=True),
        sa.Column("callback_phone", sa.String(length=20), nullable=True),
        sa.Column("checklist", sa.Text(), nullable=False),
        sa.Column("degraded_reason", sa.String(length=300), nullable=True),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_appointments_appointment_order")),
        sa.ForeignKeyConstraint(
            ["accompanying_id"], ["professionals.id"], name=op.f("fk_appointments_accompanying_id_professionals")
        ),
        sa.ForeignKeyConstraint(
            ["cancelled_by_user_id"], ["users.id"], name=op.f("fk_appointments_cancelled_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(["cpts_id"], ["organisations.id"], name=op.f("fk_appointments_cpts_id_organisations")),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"], ["users.id"], name=op.f("fk_appointments_created_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["identity_checked_by_user_id"],
            ["users.id"],
            name=op.f("fk_appointments_identity_checked_by_user_id_users"),
        ),
        sa.ForeignKeyConstraint(["kit_id"], ["resources.id"], name=op.f("fk_appointments_kit_id_resources")),
        sa.ForeignKeyConstraint(
            ["no_show_recorded_by_user_id"],
            ["users.id"],
            name=op.f("fk_appointments_no_show_recorded_by_user_id_users"),
        ),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_appointments_patient_id_patients")),
        sa.ForeignKeyConstraint(
            ["performer_id"], ["professionals.id"], name=op.f("fk_appointments_performer_id_professionals")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["session_programs.id"], name=op.f("fk_appointments_program_id_session_programs")
        ),
        sa.ForeignKeyConstraint(["room_id"], ["resources.id"], name=op.f("fk_appointments_room_id_resources")),
        sa.ForeignKeyConstraint(["slot_id"], ["slots.id"], name=op.f("fk_appointments_slot_id_slots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
    )
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_appointments_accompanying_id"), ["accompanying_id"], unique=False)
        batch_op.create_index("ix_appointments_cpts_time", ["cpts_id", "starts_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointments_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointments_performer_id"), ["performer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointments_program_id"), ["program_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointments_slot_id"), ["slot_id"], unique=False)

    op.create_table(
        "allocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column(
            "resource_kind",
            sa.Enum(
                "patient",
                "professional",
                "room",
                "kit",
                name="allocation_resource",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_allocations_allocation_order")),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_allocations_appointment_id_appointments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
    )
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_allocations_appointment_id"), ["appointment_id"], unique=False)
        batch_op.create_index(
            "ix_allocations_resource_time", ["resource_kind", "resource_id", "starts_at"], unique=False
        )

    op.create_table(
        "visit_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("professional_id", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "accepted",
                "declined",
                "withdrawn",
                name="visit_offer_state",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_visit_offers_appointment_id_appointments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["professional_id"], ["professionals.id"], name=op.f("fk_visit_offers_professional_id_professionals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_offers")),
        sa.UniqueConstraint("appointment_id", "professional_id", name="uq_visit_offers_pair"),
    )
    with op.batch_alter_table("visit_offers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visit_offers_appointment_id"), ["appointment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_visit_offers_professional_id"), ["professional_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # No double booking, ever: one resource never holds two overlapping half-open ranges.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE allocations ADD CONSTRAINT ex_allocations_no_overlap EXCLUDE USING gist "
            "(resource_kind WITH =, resource_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE allocations DROP CONSTRAINT ex_allocations_no_overlap")
    with op.batch_alter_table("visit_offers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_offers_professional_id"))
        batch_op.drop_index(batch_op.f("ix_visit_offers_appointment_id"))

    op.drop_table("visit_offers")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_index("ix_allocations_resource_time")
        batch_op.drop_index(batch_op.f("ix_allocations_appointment_id"))

    op.drop_table("allocations")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointments_slot_id"))
        batch_op.drop_index(batch_op.f("ix_appointments_program_id"))
        batch_op.drop_index(batch_op.f("ix_appointments_performer_id"))
        batch_op.drop_index(batch_op.f("ix_appointments_patient_id"))
        batch_op.drop_index("ix_appointments_cpts_time")
        batch_op.drop_index(batch_op.f("ix_appointments_accompanying_id"))

    op.drop_table("appointments")
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.drop_index("ix_slots_program_time")

    op.drop_table("slots")
    with op.batch_alter_table("program_closures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_program_closures_program_id"))

    op.drop_table("program_closures")
    op.drop_table("idempotent_requests")
    with op.batch_alter_table("session_programs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_programs_cpts_id"))

    op.drop_table("session_programs")
    with op.batch_alter_table("calendar_feeds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calendar_feeds_professional_id"))

    op.drop_table("calendar_feeds")
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resources_cpts_id"))

    op.drop_table("resources")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_messages_group_key"))
        batch_op.drop_index("ix_outbox_messages_due")
        batch_op.drop_index(batch_op.f("ix_outbox_messages_cpts_id"))

    op.drop_table("outbox_messages")
    op.drop_table("scheduler_leases")
    op.drop_table("job_runs")
    with op.batch_alter_table("patients") as batch_op:
        batch_op.drop_column("email")
    with op.batch_alter_table("professionals") as batch_op:
        batch_op.drop_column("served_communes")
        batch_op.drop_column("email")
