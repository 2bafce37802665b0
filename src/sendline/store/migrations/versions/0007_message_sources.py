"""Messages keep what they were rendered from; transactional messages; clause policy.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Forward-only (issue 12 #2, #10, #11).
- messages.event: the custom event's payload a message was rendered from, so a held
  message released later renders %EVENT.*% as the event said ("order 1042 shipped",
  not "order  shipped").
- messages.transactional: order and shipping texts, which skip quiet hours (R14) and
  the frequency cap (R15) but not consent (R4, R13) or the opt-out clause (R11).
- messages.clause_included: the body sent carries opt-out instructions. Existing
  marketing messages with a body always did (the clause was appended to every one).
- accounts.optout_clause_policy: the clause on every message (the default), or only
  when the contact got none in the last 30 days.
Plain ADD COLUMNs with constant defaults: no table rebuild on SQLite, catalog-only on
PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("event", sa.JSON().with_variant(JSONB(), "postgresql")))
    for name in ("transactional", "clause_included"):
        op.add_column(
            "messages", sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        "UPDATE messages SET clause_included = TRUE WHERE kind = 'marketing' AND body IS NOT NULL"
    )
    op.add_column(
        "accounts",
        sa.Column(
            "optout_clause_policy",
            sa.String(length=20),
            nullable=False,
            server_default="every_message",
        ),
    )


def downgrade() -> None:
    raise NotImplementedError("Sendline migrations are forward-only")
