"""Credits are reserved and settled per batch: messages carry their own share.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Forward-only. A blast used to write two ledger entries per message (its reservation and
its charge); now one reservation covers a batch of messages and one entry settles each
group of them, so a message must carry how many of its credits came from free ones
(`messages.credits_free`): a release returns each part to the bucket it came from.
Existing messages take it from their own reservation. A reservation may now be settled
in several entries (part charged, part released, at different times), so the unique
index on (reservation_id, kind) becomes a plain one; a message is settled once because
its status moves forward once (R16), under its row lock.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SETTLED = sa.text("reservation_id IS NOT NULL")


def upgrade() -> None:
    # sqlite_autoincrement: SQLite rebuilds the table, and ids must never be reused.
    with op.batch_alter_table("messages", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(
            sa.Column("credits_free", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE messages SET credits_free = (SELECT -credit_ledger.free_delta "
        "FROM credit_ledger WHERE credit_ledger.id = messages.reservation_id) "
        "WHERE reservation_id IS NOT NULL"
    )
    op.drop_index("uq_credit_ledger_settlement", table_name="credit_ledger")
    op.create_index(
        "ix_credit_ledger_reservation",
        "credit_ledger",
        ["reservation_id", "kind"],
        sqlite_where=_SETTLED,
        postgresql_where=_SETTLED,
    )


def downgrade() -> None:
    raise NotImplementedError("Sendline migrations are forward-only")
