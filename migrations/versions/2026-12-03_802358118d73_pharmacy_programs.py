"""Programs of teleconsultation assisted in an officine: a new program kind

Revision ID: 802358118d73
Revises: 202a949c8ce0
Create Date: 2026-12-03 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "802358118d73"
down_revision = "202a949c8ce0"
branch_labels = None
depends_on = None

BEFORE = ("assisted_teleconsultation", "telesoin")
AFTER = (*BEFORE, "pharmacy_teleconsultation")


def _kind(values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name="program_kind", native_enum=False, create_constraint=True)


def _set_kinds(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    # The enum is a VARCHAR with a named CHECK (hub.models._types.enum_type): batch mode rebuilds the table
    # on SQLite, and on PostgreSQL the CHECK is dropped and created again. The length is that of the longest
    # value, unchanged here.
    with op.batch_alter_table("session_programs") as batch_op:
        batch_op.alter_column("kind", existing_type=_kind(old), type_=_kind(new), existing_nullable=False)


def upgrade() -> None:
    _set_kinds(BEFORE, AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM session_programs WHERE kind = 'pharmacy_teleconsultation'")
    _set_kinds(AFTER, BEFORE)
