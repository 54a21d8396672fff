"""The audit chain moves to its own append-only table, linked by a sequencer with a keyed hash (HMAC)

The request no longer chains its audit rows: `audit_events` loses `seq`, `prev_hash` and `hash`, and the new
`audit_chain` table holds one link per event (its position, the event's id, the HMAC-SHA256 of the event and the
previous link's mac, keyed by HUB_AUDIT_KEY). Existing rows are not linked here — the key is not the migration's
to know: the sequencer (the worker, or `flask hub audit verify`) re-chains them, in id order, with the HMAC.
The old unkeyed chain is dropped with its columns; the downgrade recomputes it (SHA-256, in id order).

Revision ID: 4a7c2e9d1f38
Revises: 9f3e2b7c1a64
Create Date: 2026-12-04 10:30:00
"""

import datetime as dt
import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "4a7c2e9d1f38"
down_revision = "9f3e2b7c1a64"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_chain",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["audit_events.id"], name=op.f("fk_audit_chain_event_id_audit_events")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_chain")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_chain_event_id")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_audit_events_seq", type_="unique")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
    if op.get_bind().dialect.name == "postgresql":
        # Append-only for every role; and the application's role is not the owner, so cannot lift it (README).
        op.execute(
            """
            CREATE FUNCTION audit_chain_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_chain is append-only' USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain "
            "FOR EACH ROW EXECUTE FUNCTION audit_chain_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_refuse_change()"
        )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute("DROP TRIGGER audit_chain_no_truncate ON audit_chain")
        op.execute("DROP TRIGGER audit_chain_append_only ON audit_chain")
        op.execute("DROP FUNCTION audit_chain_refuse_change()")
    op.drop_table("audit_chain")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    if postgresql:
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
    _rechain_unkeyed()
    if postgresql:
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint("uq_audit_events_seq", ["seq"])


_ROWS = (
    "SELECT id, occurred_at, actor_user_id, actor_label, action, outcome, target_type, target_id, cpts_id, "
    "request_id, ip, details FROM audit_events ORDER BY id"
)


def _rechain_unkeyed() -> None:
    """The previous revision's chain: SHA-256 over the row and the previous hash, in id order."""
    bind = op.get_bind()
    rows = bind.execute(sa.text(_ROWS)).all()
    prev_hash = "0" * 64
    for seq, row in enumerate(rows, start=1):
        occurred_at = row.occurred_at
        if isinstance(occurred_at, str):  # SQLite hands the stored UTC text back
            occurred_at = dt.datetime.fromisoformat(occurred_at)
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=dt.UTC)
        material = [
            seq,
            occurred_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            row.actor_user_id,
            row.actor_label,
            row.action,
            row.outcome,
            row.target_type,
            row.target_id,
            row.cpts_id,
            row.request_id,
            row.ip,
            row.details,
            prev_hash,
        ]
        row_hash = hashlib.sha256(json.dumps(material, separators=(",", ":")).encode()).hexdigest()
        bind.execute(
            sa.text("UPDATE audit_events SET seq = :seq, prev_hash = :prev, hash = :hash WHERE id = :id"),
            {"seq": seq, "prev": prev_hash, "hash": row_hash, "id": row.id},
        )
        prev_hash = row_hash
