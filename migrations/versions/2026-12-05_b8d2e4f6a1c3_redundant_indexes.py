"""Five indexes that another index of their table already serves, dropped

Each is the leading column(s) of a unique constraint or of a wider index of the same table, which answers the same
lookups (PostgreSQL and SQLite read a btree by its leading columns) and checks the same foreign keys; keeping them
cost an index entry more on every insert, and on every update that is not HOT:

- `ix_slots_program_time` (program_id, starts_at): the very columns of `uq_slots_program_start`;
- `ix_visit_offers_appointment_id`: `uq_visit_offers_pair` (appointment_id, professional_id), written by every booking;
- `ix_reports_root_id`: `uq_reports_root_version` (root_id, version), written three times by every report (the
  draft's insert, its root_id, its signature);
- `ix_patients_cpts_id`: `uq_patients_cpts_ins` (cpts_id, ins_matricule) and `ix_patients_traits`;
- `ix_teleexpertise_requests_cpts_id`: `ix_teleexpertise_requests_cpts_submitted` (cpts_id, submitted_at).

Revision ID: b8d2e4f6a1c3
Revises: a3f7c1e9d2b4
Create Date: 2026-12-05 05:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "b8d2e4f6a1c3"
down_revision = "a3f7c1e9d2b4"
branch_labels = None
depends_on = None

# name, table, columns (what downgrade builds again)
REDUNDANT = (
    ("ix_slots_program_time", "slots", ["program_id", "starts_at"]),
    ("ix_visit_offers_appointment_id", "visit_offers", ["appointment_id"]),
    ("ix_reports_root_id", "reports", ["root_id"]),
    ("ix_patients_cpts_id", "patients", ["cpts_id"]),
    ("ix_teleexpertise_requests_cpts_id", "teleexpertise_requests", ["cpts_id"]),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, table, _columns in REDUNDANT:
            op.drop_index(name, table_name=table)
        return
    # Concurrently, outside a transaction: a plain DROP INDEX takes an ACCESS EXCLUSIVE lock on its table (slots,
    # reports, patients are read by nearly every request) and would queue them behind any long reader.
    with op.get_context().autocommit_block():
        for name, table, _columns in REDUNDANT:
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, table, columns in REDUNDANT:
            op.create_index(name, table, columns)
        return
    # A concurrent build that times out (env.py's lock_timeout) leaves an INVALID index of that name behind, which
    # IF NOT EXISTS would keep: that one alone is dropped and built again. A valid one (a rerun after an interruption
    # further on) is kept rather than rebuilt on a table every request reads.
    with op.get_context().autocommit_block():
        for name, table, columns in REDUNDANT:
            invalid = op.get_bind().scalar(
                sa.text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": name}
            )
            if invalid:
                op.drop_index(name, table_name=table, postgresql_concurrently=True)
            op.create_index(name, table, columns, postgresql_concurrently=True, if_not_exists=True)
