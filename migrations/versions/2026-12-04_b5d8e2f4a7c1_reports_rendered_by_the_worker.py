"""Reports rendered by the worker: the signature freezes the content, the worker renders the PDF and CDA

`reports` gains `frozen_content` (the clinical document and recipients as signed, JSON), `content_sha256` (its
hash) and `render_lease_until` (a worker rendering holds the report until then), and a partial index on the
reports signed but not rendered yet: the worker's queue. Reports signed before this revision were rendered at
signing: their content is not frozen again (null), so none of them is queued.

Revision ID: b5d8e2f4a7c1
Revises: 6d1f0b8e2c47
Create Date: 2026-12-04 13:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "b5d8e2f4a7c1"
down_revision = "6d1f0b8e2c47"
branch_labels = None
depends_on = None

AWAITING_RENDERING = "content_sha256 IS NOT NULL AND pdf_sha256 IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("frozen_content", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("content_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("render_lease_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_reports_awaiting_rendering",
        "reports",
        ["id"],
        unique=False,
        postgresql_where=sa.text(AWAITING_RENDERING),
        sqlite_where=sa.text(AWAITING_RENDERING),
    )


def downgrade() -> None:
    op.drop_index("ix_reports_awaiting_rendering", table_name="reports")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("render_lease_until")
        batch_op.drop_column("content_sha256")
        batch_op.drop_column("frozen_content")
