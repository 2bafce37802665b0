"""Index contacts by their phone as submitted when it has no E.164 form; record who
recorded a consent event.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Forward-only. A CSV import now stores contacts whose phone is invalid or a landline
(R6/R8: flagged, their messages held) instead of rejecting them. A row with no email and
such a phone can only be recognised by the phone as submitted, so a re-run of the file
updates that contact instead of adding it again. The index is partial (phones without an
E.164 form only): valid numbers keep their unique E.164 index and pay nothing.

`consent_events.recorded_by`: consent captured elsewhere and entered by a person
(`sendline contacts opt-in|opt-out`) names who entered it, part of the proof (R4).
Earlier events have none (they came from forms, keywords and imports).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_UNCHECKED = "phone_e164 IS NULL AND phone IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_contacts_account_id_unchecked_phone",
        "contacts",
        ["account_id", "phone"],
        sqlite_where=sa.text(_UNCHECKED),
        postgresql_where=sa.text(_UNCHECKED),
    )
    with op.batch_alter_table("consent_events") as batch:
        batch.add_column(sa.Column("recorded_by", sa.String(100), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("Sendline migrations are forward-only")
