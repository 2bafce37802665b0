"""Engine schema: automations, versions, runs, messages, inbound texts, the sandbox
carrier's records and shared rate-limit state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Forward-only. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _partial(column: str) -> dict[str, Any]:
    condition = sa.text(f"{column} IS NOT NULL")
    return {"sqlite_where": condition, "postgresql_where": condition}


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("tat", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limits")),
    )
    op.create_table(
        "sandbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("message_ref", sa.Integer(), nullable=True),
        sa.Column("sender", sa.String(length=20), nullable=True),
        sa.Column("to", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error_code", sa.String(length=16), nullable=True),
        sa.Column("accepted_at", _ts(), nullable=False),
        sa.Column("report_due_at", _ts(), nullable=False),
        sa.Column("reported", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_messages")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_sandbox_messages_message_ref", "sandbox_messages", ["message_ref"], unique=False
    )
    op.create_index(
        "ix_sandbox_messages_report_due",
        "sandbox_messages",
        ["reported", "report_due_at"],
        unique=False,
    )
    op.create_index(
        "uq_sandbox_messages_provider_id", "sandbox_messages", ["provider_id"], unique=True
    )
    op.create_table(
        "automations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("current_version_id", sa.Integer(), nullable=True),
        sa.Column("trigger_type", sa.String(length=20), nullable=False),
        sa.Column("trigger_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'active', 'paused', 'archived')",
            name=op.f("ck_automations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_automations_account_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automations")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_automations_trigger",
        "automations",
        ["account_id", "trigger_type", "trigger_key"],
        unique=False,
    )
    op.create_index(
        "uq_automations_account_id_name", "automations", ["account_id", "name"], unique=True
    )
    op.create_table(
        "automation_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("automation_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("definition", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["automation_id"], ["automations.id"], name=op.f("fk_automation_versions_automation_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_versions")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "uq_automation_versions_automation_id_number",
        "automation_versions",
        ["automation_id", "number"],
        unique=True,
    )
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("from_number", sa.String(length=64), nullable=False),
        sa.Column("to_number", sa.String(length=64), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("received_at", _ts(), nullable=False),
        sa.Column("reviewed_at", _ts(), nullable=True),
        sa.CheckConstraint(
            "action IN ('opt_out', 'opt_in', 'help', 'review', 'none')",
            name=op.f("ck_inbound_messages_action"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_inbound_messages_account_id")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_inbound_messages_contact_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_inbound_messages_contact_id",
        "inbound_messages",
        ["contact_id", "received_at"],
        unique=False,
    )
    op.create_index(
        "ix_inbound_messages_review",
        "inbound_messages",
        ["account_id", "action", "reviewed_at"],
        unique=False,
    )
    op.create_index(
        "uq_inbound_messages_provider_id",
        "inbound_messages",
        ["provider_id"],
        unique=True,
        **_partial("provider_id"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("automation_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("step_id", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("template", sa.Text(), nullable=True),
        sa.Column("to_e164", sa.String(length=20), nullable=True),
        sa.Column("region", sa.String(length=3), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("encoding", sa.String(length=5), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("reservation_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("held_reason", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("due_at", _ts(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("deadline_at", _ts(), nullable=True),
        sa.Column("provider", sa.String(length=20), nullable=True),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_at", _ts(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("sent_at", _ts(), nullable=True),
        sa.Column("delivered_at", _ts(), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.CheckConstraint("kind IN ('marketing', 'reply')", name=op.f("ck_messages_kind")),
        sa.CheckConstraint(
            "status <> 'held' OR held_reason IS NOT NULL", name=op.f("ck_messages_held_reason")
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'sending', 'unknown', 'sent', 'delivered', 'undelivered', "
            "'failed', 'held', 'canceled')",
            name=op.f("ck_messages_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_messages_account_id")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_messages_contact_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_messages_account_id_status", "messages", ["account_id", "status"], unique=False
    )
    op.create_index(
        "ix_messages_contact_id_created_at", "messages", ["contact_id", "created_at"], unique=False
    )
    op.create_index("ix_messages_due", "messages", ["status", "due_at"], unique=False)
    op.create_index(
        "uq_messages_idempotency_key",
        "messages",
        ["idempotency_key"],
        unique=True,
        **_partial("idempotency_key"),
    )
    op.create_index(
        "uq_messages_provider_id",
        "messages",
        ["provider_id"],
        unique=True,
        **_partial("provider_id"),
    )
    op.create_table(
        "automation_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("automation_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=True),
        sa.Column("steps_done", sa.Integer(), nullable=False),
        sa.Column("due_at", _ts(), nullable=True),
        sa.Column("wait_until", _ts(), nullable=True),
        sa.Column("context", _json(), nullable=False),
        sa.Column("enrollment_key", sa.String(length=200), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", _ts(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'completed', 'exited', 'failed')",
            name=op.f("ck_automation_runs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_automation_runs_account_id")
        ),
        sa.ForeignKeyConstraint(
            ["automation_id"], ["automations.id"], name=op.f("fk_automation_runs_automation_id")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_automation_runs_contact_id")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["automation_versions.id"], name=op.f("fk_automation_runs_version_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_runs")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_automation_runs_contact_id", "automation_runs", ["contact_id", "status"], unique=False
    )
    op.create_index("ix_automation_runs_due", "automation_runs", ["status", "due_at"], unique=False)
    op.create_index(
        "uq_automation_runs_enrollment_key",
        "automation_runs",
        ["enrollment_key"],
        unique=True,
        **_partial("enrollment_key"),
    )
