"""An appointment's performer and accompanying IDEL indexed with its start time

`ix_appointments_performer_time` (performer_id, starts_at) and `ix_appointments_accompanying_time` (accompanying_id,
starts_at) replace the single-column indexes of those two columns. A professional's agenda, iCal feed and « Mes
visites » read their appointments of a window of days: with the professional's id alone, PostgreSQL read the whole
history of that professional through the index and threw away what lies outside the window (a feed over three years
of history: 7,778 blocks read and 55 ms for its versions' statement, 2,943 blocks and 27 ms with these, on a loaded
machine; bench/README.md, the iCal feed's section of 2026-12-05). Their leading column still serves the foreign
keys' checks and the lookups by professional.

Revision ID: c4e6a8b0d2f1
Revises: b8d2e4f6a1c3
Create Date: 2026-12-05 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "c4e6a8b0d2f1"
down_revision = "b8d2e4f6a1c3"
branch_labels = None
depends_on = None

# (index with the time, the single-column index it replaces, the column)
REPLACED = (
    ("ix_appointments_performer_time", "ix_appointments_performer_id", "performer_id"),
    ("ix_appointments_accompanying_time", "ix_appointments_accompanying_id", "accompanying_id"),
)


def upgrade() -> None:
    for new, old, column in REPLACED:
        _build(new, [column, "starts_at"])
        _drop(old)


def downgrade() -> None:
    for new, old, column in REPLACED:
        _build(old, [column])
        _drop(new)


def _build(name: str, columns: list[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(name, "appointments", columns)
        return
    # Concurrently, outside a transaction: appointments is written by every booking and state change. An interrupted
    # concurrent build (env.py's lock_timeout) leaves an INVALID index of that name, which IF NOT EXISTS would keep:
    # that one alone is dropped and built again. A valid one (a rerun after an interruption further on) is kept, not
    # rebuilt on this hot table.
    with op.get_context().autocommit_block():
        invalid = op.get_bind().scalar(
            sa.text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": name}
        )
        if invalid:
            op.drop_index(name, table_name="appointments", postgresql_concurrently=True)
        op.create_index(name, "appointments", columns, postgresql_concurrently=True, if_not_exists=True)


def _drop(name: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index(name, table_name="appointments")
        return
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name="appointments", postgresql_concurrently=True, if_exists=True)
