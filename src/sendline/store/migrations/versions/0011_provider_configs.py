"""Add `provider_configs`: the carriers each account sends through, in failover order.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

Forward-only. Secrets are stored sealed (`store.secret_box`), never in clear. An account
with no row keeps the sandbox.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_configs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column(
            "settings", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("sender_number", sa.String(length=20), nullable=True),
        sa.Column("carrier_confirms_optout", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('twilio', 'http')", name=op.f("ck_provider_configs_kind")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_provider_configs_account_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_configs")),
        sa.UniqueConstraint("account_id", "position", name="uq_provider_configs_account_position"),
    )
    op.create_index("ix_provider_configs_sender_number", "provider_configs", ["sender_number"])


def downgrade() -> None:
    raise NotImplementedError("Sendline migrations are forward-only")
