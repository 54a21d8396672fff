"""The events the audit sequencer has not chained yet, marked in their own table by a trigger

The worker's sequencer used to look for unchained events among the last 10,000 ids only: an event whose
transaction committed after that many later ids had been chained waited for a manual `audit verify`. Now a trigger
on audit_events adds each new event's id to `audit_unchained` in the inserting transaction, and the sequencer chains
what that table lists (and deletes the markers with the links), whatever the ids. The events not chained yet when
this runs are marked here.

Revision ID: 5c1d8e2a7b94
Revises: b5d8e2f4a7c1
Create Date: 2026-12-04 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "5c1d8e2a7b94"
down_revision = "b5d8e2f4a7c1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_unchained",
        sa.Column("event_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_audit_unchained")),
    )
    if _postgresql():
        # One statement-level trigger per INSERT (the request writes its rows in one multi-row INSERT).
        op.execute(
            """
            CREATE FUNCTION audit_mark_unchained() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO audit_unchained (event_id) SELECT id FROM new_events;
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_events_mark_unchained AFTER INSERT ON audit_events "
            "REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION audit_mark_unchained()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_events_mark_unchained AFTER INSERT ON audit_events "
            "BEGIN INSERT INTO audit_unchained (event_id) VALUES (NEW.id); END"
        )
    op.execute(
        "INSERT INTO audit_unchained (event_id) SELECT id FROM audit_events "
        "WHERE NOT EXISTS (SELECT 1 FROM audit_chain WHERE audit_chain.event_id = audit_events.id)"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_events_mark_unchained" + (" ON audit_events" if _postgresql() else ""))
    if _postgresql():
        op.execute("DROP FUNCTION audit_mark_unchained()")
    op.drop_table("audit_unchained")


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"
