"""Drop the sandbox carrier's index on its own message ids.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Forward-only. No query looks a sandbox record up by its provider id (receipts are
matched on our side, by messages.provider_id, which keeps its unique index; the
carrier's lookups go by message_ref), and the ids are 128 random bits. Random keys land
on a random page of the index each, so on SQLite every accepted batch rewrote hundreds
of index pages: about a tenth of a blast's time (measured at 100,000 messages), for an
index nothing read.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("uq_sandbox_messages_provider_id", table_name="sandbox_messages")


def downgrade() -> None:
    raise NotImplementedError("Sendline migrations are forward-only")
