"""Drop automation_runs.claimed_by and claimed_until: runs are no longer claimed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Forward-only. A worker now locks a batch of due runs and advances it in the same
transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so a crash rolls the batch back
and the runs are due again at once: no claim stamp, no lease to wait out, and one row
write less per run.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # sqlite_autoincrement: SQLite rebuilds the table, and ids must never be reused.
    with op.batch_alter_table(
        "automation_runs", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.drop_column("claimed_by")
        batch.drop_column("claimed_until")


def downgrade() -> None:
    raise NotImplementedError("Sendline migrations are forward-only")
