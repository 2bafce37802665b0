"""Add `account_events`: the activity log, a message's status history and the outbox
of the outbound webhooks.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

Forward-only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

KINDS = (
    "'message.status', 'message.held', 'contact.opted_out', 'contact.opted_in', 'inbound.received'"
)


def upgrade() -> None:
    op.create_table(
        "account_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"kind IN ({KINDS})", name=op.f("ck_account_events_kind")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_events_account_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_events")),
    )
    op.create_index("ix_account_events_account_id_id", "account_events", ["account_id", "id"])
    op.create_index("ix_account_events_message_id", "account_events", ["message_id"])


def downgrade() -> None:
    raise NotImplementedError("Sendline migrations are forward-only")
