"""Add `workers`: each running worker's heartbeat.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Forward-only. A claim whose worker's heartbeat has expired is reconciled at once
instead of after the claim's lease (issue 12, item 16): recovery from a `kill -9` takes
the heartbeat window (seconds), not the lease (a minute).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("heartbeat_at", _ts(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )


def downgrade() -> None:
    raise NotImplementedError("Sendline migrations are forward-only")
