"""Index messages on (account_id, id): `GET /api/v1/messages` pages an account's
messages newest first by id (keyset: `id < cursor ORDER BY id DESC LIMIT n`).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

Forward-only. Without it PostgreSQL either walks the primary key backwards over every
account's messages, or reads all of this account's through (account_id, status) and
sorts them; with it a page is an index range scan of `limit + 1` entries.
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_account_id_id", "messages", ["account_id", "id"])


def downgrade() -> None:
    raise NotImplementedError("Sendline migrations are forward-only")
