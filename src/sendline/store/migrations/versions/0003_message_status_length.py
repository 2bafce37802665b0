"""Widen messages.status to 12 characters: `undelivered` (R16) has 11.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Forward-only. PostgreSQL enforces VARCHAR lengths (and refused `undelivered`); SQLite
does not, but its declared type is changed too so the schema matches the models on both
databases. Widening a VARCHAR is a catalog-only change on PostgreSQL (no rewrite).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # sqlite_autoincrement: SQLite rebuilds the table, and ids must never be reused.
    with op.batch_alter_table("messages", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column(
            "status",
            existing_type=sa.String(length=10),
            type_=sa.String(length=12),
            existing_nullable=False,
        )


def downgrade() -> None:
    raise NotImplementedError("Sendline migrations are forward-only")
