"""Resources managed by the coordination: dedicated teleconsultation places, address, description, retirement

Revision ID: 5b45b3b442a8
Revises: a60ef26e5e56
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "5b45b3b442a8"
down_revision = "a60ef26e5e56"
branch_labels = None
depends_on = None

KIND_CHECK = "ck_resources_resource_kind"


def upgrade() -> None:
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(KIND_CHECK), type_="check")
        batch_op.alter_column(
            "kind", existing_type=sa.String(length=4), type_=sa.String(length=15), existing_nullable=False
        )
        batch_op.create_check_constraint(op.f(KIND_CHECK), "kind IN ('room', 'kit', 'dedicated_place')")
        batch_op.add_column(sa.Column("address", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("description", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))
    # A resource already inactive was retired before the hub recorded when: it is dated by this migration.
    op.execute("UPDATE resources SET retired_at = CURRENT_TIMESTAMP WHERE NOT is_active")
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f("ck_resources_retired_when_inactive"), "is_active = (retired_at IS NULL)")


def downgrade() -> None:
    # Before this revision a dedicated place was recorded as a room.
    op.execute("UPDATE resources SET kind = 'room' WHERE kind = 'dedicated_place'")
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_resources_retired_when_inactive"), type_="check")
        batch_op.drop_column("retired_at")
        batch_op.drop_column("description")
        batch_op.drop_column("address")
        batch_op.drop_constraint(op.f(KIND_CHECK), type_="check")
        batch_op.alter_column(
            "kind", existing_type=sa.String(length=15), type_=sa.String(length=4), existing_nullable=False
        )
        batch_op.create_check_constraint(op.f(KIND_CHECK), "kind IN ('room', 'kit')")
