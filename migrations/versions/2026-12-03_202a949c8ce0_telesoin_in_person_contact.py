"""Télésoin: the last in-person care of the patient as the booker attested it

Revision ID: 202a949c8ce0
Revises: dc9a3d231159
Create Date: 2026-12-03 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "202a949c8ce0"
down_revision = "dc9a3d231159"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_in_person_contact_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("last_in_person_contact_on")
