"""Initial schema: accounts, credits, contacts, consent.

Revision ID: 0001
Revises:
Create Date: 2026-01-05

Forward-only. Runs on SQLite and PostgreSQL. The consent record and the credit ledger
are append-only at the database level too: a trigger rejects UPDATE and DELETE.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY_TABLES = ("consent_events", "credit_ledger")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _ck(table: str, name: str, condition: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(condition, name=op.f(f"ck_{table}_{name}"))


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _partial(column: str) -> dict[str, Any]:
    condition = sa.text(f"{column} IS NOT NULL")
    return {"sqlite_where": condition, "postgresql_where": condition}


def upgrade() -> None:
    _accounts()
    _credits()
    _contacts()
    _consent()
    _append_only_triggers()


def _accounts() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("product_line", sa.String(20), nullable=False),
        sa.Column("tier", sa.String(20), nullable=False),
        sa.Column("last_purchase_on", sa.Date(), nullable=False),
        sa.Column("sms_addon", sa.Boolean(), nullable=False),
        sa.Column("optout_clause", sa.String(160), nullable=False),
        sa.Column("optout_language", sa.String(10), nullable=False),
        sa.Column("help_text", sa.String(320), nullable=False),
        sa.Column("max_segments", sa.SmallInteger(), nullable=False),
        sa.Column("quiet_start", sa.SmallInteger(), nullable=False),
        sa.Column("quiet_end", sa.SmallInteger(), nullable=False),
        sa.Column("frequency_cap", sa.SmallInteger(), nullable=False),
        sa.Column("credit_rates", _json(), nullable=False),
        sa.Column("sender_number", sa.String(20), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
        _ck("accounts", "product_line", _in("product_line", ("marketing", "sales"))),
        _ck(
            "accounts",
            "tier",
            _in("tier", ("lite", "starter", "plus", "professional", "enterprise")),
        ),
        _ck("accounts", "max_segments", "max_segments BETWEEN 1 AND 10"),
        _ck(
            "accounts",
            "window",
            "quiet_start >= 0 AND quiet_start < quiet_end AND quiet_end <= 1440",
        ),
        _ck("accounts", "frequency_cap", "frequency_cap >= 1"),
        sqlite_autoincrement=True,
    )


def _credits() -> None:
    op.create_table(
        "credit_balances",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("free", sa.Integer(), nullable=False),
        sa.Column("purchased", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_credit_balances")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_credit_balances_account_id")
        ),
        _ck("credit_balances", "free", "free >= 0"),
        _ck("credit_balances", "purchased", "purchased >= 0"),
        _ck("credit_balances", "reserved", "reserved >= 0"),
    )
    kinds = ("grant", "expire", "purchase", "reserve", "charge", "release", "refund")
    op.create_table(
        "credit_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("free_delta", sa.Integer(), nullable=False),
        sa.Column("purchased_delta", sa.Integer(), nullable=False),
        sa.Column("reserved_delta", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("reservation_id", sa.Integer(), nullable=True),
        sa.Column("period", sa.String(7), nullable=True),
        sa.Column("note", sa.String(200), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_ledger")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_credit_ledger_account_id")
        ),
        sa.ForeignKeyConstraint(
            ["reservation_id"], ["credit_ledger.id"], name=op.f("fk_credit_ledger_reservation_id")
        ),
        _ck("credit_ledger", "kind", _in("kind", kinds)),
        _ck("credit_ledger", "amount", "amount >= 0"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_credit_ledger_account_id_id", "credit_ledger", ["account_id", "id"])
    op.create_index(
        "uq_credit_ledger_period",
        "credit_ledger",
        ["account_id", "kind", "period"],
        unique=True,
        **_partial("period"),
    )
    op.create_index(
        "uq_credit_ledger_settlement",
        "credit_ledger",
        ["reservation_id", "kind"],
        unique=True,
        **_partial("reservation_id"),
    )
    op.create_index(
        "ix_credit_ledger_message",
        "credit_ledger",
        ["account_id", "message_id"],
        **_partial("message_id"),
    )


def _contacts() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("first_name", sa.String(100), nullable=True),
        sa.Column("last_name", sa.String(100), nullable=True),
        sa.Column("phone", sa.String(64), nullable=True),
        sa.Column("phone_e164", sa.String(20), nullable=True),
        sa.Column("phone_status", sa.String(16), nullable=False),
        sa.Column("phone_region", sa.String(3), nullable=True),
        sa.Column("time_zone", sa.String(64), nullable=True),
        sa.Column("fields", _json(), nullable=False),
        sa.Column("sms_consent", sa.String(10), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_contacts_account_id")
        ),
        _ck(
            "contacts",
            "phone_status",
            _in("phone_status", ("ok", "no_phone", "invalid_phone", "landline")),
        ),
        _ck("contacts", "sms_consent", _in("sms_consent", ("opted_in", "opted_out", "none"))),
        sa.UniqueConstraint("account_id", "id", name=op.f("uq_contacts_account_id_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "uq_contacts_account_id_email",
        "contacts",
        ["account_id", "email"],
        unique=True,
        **_partial("email"),
    )
    op.create_index(
        "uq_contacts_account_id_phone_e164",
        "contacts",
        ["account_id", "phone_e164"],
        unique=True,
        **_partial("phone_e164"),
    )
    op.create_table(
        "custom_fields",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_fields")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_custom_fields_account_id")
        ),
        sa.UniqueConstraint("account_id", "key", name=op.f("uq_custom_fields_account_id_key")),
        _ck("custom_fields", "type", _in("type", ("text", "number", "date", "phone"))),
    )
    op.create_table(
        "contact_tags",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", "tag", name=op.f("pk_contact_tags")),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_contact_tags_contact_id")
        ),
    )
    op.create_index("ix_contact_tags_tag", "contact_tags", ["tag"])
    op.create_table(
        "lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lists")),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_lists_account_id")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_lists_account_id_name")),
    )
    op.create_table(
        "list_members",
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("subscribed_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("list_id", "contact_id", name=op.f("pk_list_members")),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], name=op.f("fk_list_members_list_id")),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_list_members_contact_id")
        ),
    )
    op.create_index("ix_list_members_contact_id", "list_members", ["contact_id"])


def _consent() -> None:
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("disclosure", sa.Text(), nullable=True),
        sa.Column("ip", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.String(400), nullable=True),
        sa.Column("occurred_at", _ts(), nullable=False),
        sa.Column("recorded_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
        # (account, contact) -> contacts: an event cannot name another account's contact.
        sa.ForeignKeyConstraint(
            ["account_id", "contact_id"],
            ["contacts.account_id", "contacts.id"],
            name=op.f("fk_consent_events_account_id"),
        ),
        _ck("consent_events", "kind", _in("kind", ("opt_in", "opt_out"))),
        _ck(
            "consent_events",
            "method",
            _in("method", ("form", "keyword", "import", "api", "agent")),
        ),
        # No AUTOINCREMENT: rows are never deleted, so ids are never reused anyway.
    )
    op.create_index(
        "ix_consent_events_account_contact",
        "consent_events",
        ["account_id", "contact_id", "occurred_at"],
    )


def _append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION sendline_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'restrict_violation';
            END
            $$
            """
        )
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION sendline_append_only()"
            )
        return
    for table in APPEND_ONLY_TABLES:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {action} refused'); END"
            )
