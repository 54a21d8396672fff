"""The outbox list by CPTS, newest first, read from one index

`ix_outbox_messages_cpts_id` (cpts_id) becomes `ix_outbox_messages_cpts_id_id` (cpts_id, id): the coordination's
« Envois » and GET /api/v1/outbox count a CPTS's messages and page through them newest first; with the id in the
index the count is an index-only scan and a page's OFFSET walks the index, not the table and a sort of all the
CPTS's messages. The composite serves every use of the single-column index, so the table keeps as many indexes
(the outbox is written on every booking and report).

Revision ID: 6d1f0b8e2c47
Revises: 4a7c2e9d1f38
Create Date: 2026-12-04 13:30:00
"""

from alembic import op

revision = "6d1f0b8e2c47"
down_revision = "4a7c2e9d1f38"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_messages_cpts_id_id", ["cpts_id", "id"], unique=False)
        batch_op.drop_index("ix_outbox_messages_cpts_id")


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_messages_cpts_id", ["cpts_id"], unique=False)
        batch_op.drop_index("ix_outbox_messages_cpts_id_id")
