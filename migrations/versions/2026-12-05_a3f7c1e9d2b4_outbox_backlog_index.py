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

NAME = "ix_outbox_messages_cpts_in_flight"
IN_FLIGHT = sa.text("state IN ('pending', 'sending')")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(NAME, "outbox_messages", ["cpts_id", "next_attempt_at"], sqlite_where=IN_FLIGHT)
        return
    # Built concurrently, outside a transaction: a plain CREATE INDEX holds a SHARE lock on outbox_messages, which
    # every booking, report and reminder writes, for the whole scan of its sent rows, and the web nodes' requests
    # would wait behind it for up to statement_timeout. The transaction of the migrations before it is committed.
    with op.get_context().autocommit_block():
        # An interrupted concurrent build leaves an invalid index behind, which IF NOT EXISTS would keep and the
        # planner never uses: that one is dropped and built again.
        invalid = op.get_bind().scalar(
            sa.text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": NAME}
        )
        if invalid:
            op.drop_index(NAME, table_name="outbox_messages", postgresql_concurrently=True)
        op.create_index(
            NAME,
            "outbox_messages",
            ["cpts_id", "next_attempt_at"],
            postgresql_where=IN_FLIGHT,
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index(NAME, table_name="outbox_messages")
        return
    with op.get_context().autocommit_block():
        op.drop_index(NAME, table_name="outbox_messages", postgresql_concurrently=True, if_exists=True)
