"""Record who reviewed a free-text revocation, and what they decided (R12).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Forward-only. `sendline inbox review` closes a reply flagged for review: an opt-out
decision is also a consent event (method agent); a not-opt-out decision is recorded
only here, so both keep who decided and what, next to the existing `reviewed_at`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # sqlite_autoincrement: SQLite rebuilds the table (for the CHECK), and ids must
    # never be reused.
    with op.batch_alter_table(
        "inbound_messages", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.add_column(sa.Column("review_decision", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("reviewed_by", sa.String(length=100), nullable=True))
        batch.create_check_constraint(
            "review_decision", "review_decision IN ('opt_out', 'not_opt_out')"
        )


def downgrade() -> None:
    raise NotImplementedError("Sendline migrations are forward-only")
