"""The outbox's backlog by CPTS, read from its in-flight rows alone

`ix_outbox_messages_cpts_in_flight` (cpts_id, next_attempt_at) WHERE state IN ('pending', 'sending'): how many of a
CPTS's messages wait for the worker, and since when the oldest waits (the coordination's « Envois » and desk,
GET /api/v1/outbox/status), without reading its sent and dead messages, the bulk of the table. Partial, so that a
message leaves it once sent: the outbox is written on every booking and report.

Revision ID: a3f7c1e9d2b4
Revises: e8a4c2f6b1d3
Create Date: 2026-12-05 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "a3f7c1e9d2b4"
down_revision = "e8a4c2f6b1d3"
branch_labels = None
depends_on = None

IN_FLIGHT = sa.text("state IN ('pending', 'sending')")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_messages_cpts_in_flight",
        "outbox_messages",
        ["cpts_id", "next_attempt_at"],
        unique=False,
        postgresql_where=IN_FLIGHT,
        sqlite_where=IN_FLIGHT,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_messages_cpts_in_flight", table_name="outbox_messages")
