"""Tables and the few domain rules that belong to a row (cohort, SMS eligibility).

The schema itself is created by the hand-written migrations in `migrations/versions/`;
a test compares these models with the migrated schema on both databases so the two
cannot drift.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sendline.errors import AddonRequired, SendlineError, SmsNotInPlan
from sendline.store.types import UTCDateTime, utcnow

PRODUCT_LINES = ("marketing", "sales")
TIERS = ("lite", "starter", "plus", "professional", "enterprise")
SMS_TIERS = frozenset({"plus", "professional", "enterprise"})
# R2: purchased or upgraded on or after this day -> current cohort; before -> legacy.
COHORT_CUTOFF = date(2023, 1, 3)
MONTHLY_FREE_CREDITS = {"plus": 25, "professional": 25, "enterprise": 1000}

DEFAULT_OPTOUT_CLAUSE = "Reply STOP to opt out"
OPTOUT_CLAUSE_POLICIES = ("every_message", "every_30_days")  # R11, issue 12 #11
DEFAULT_QUIET_START = 8 * 60
DEFAULT_QUIET_END = 21 * 60
DEFAULT_FREQUENCY_CAP = 3

LEDGER_KINDS = ("grant", "expire", "purchase", "reserve", "charge", "release", "refund")
CONSENT_KINDS = ("opt_in", "opt_out")
CONSENT_METHODS = ("form", "keyword", "import", "api", "agent")
CONSENT_STATUSES = ("opted_in", "opted_out", "none")
PHONE_STATUSES = ("ok", "no_phone", "invalid_phone", "landline")
FIELD_TYPES = ("text", "number", "date", "phone")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}


def default_help_text(name: str) -> str:
    return f"{name}: for help reply HELP or contact support. Reply STOP to opt out."


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON().with_variant(JSONB(), "postgresql"),
    }


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(_in("product_line", PRODUCT_LINES), name="product_line"),
        CheckConstraint(_in("tier", TIERS), name="tier"),
        CheckConstraint("max_segments BETWEEN 1 AND 10", name="max_segments"),
        CheckConstraint(
            "quiet_start >= 0 AND quiet_start < quiet_end AND quiet_end <= 1440", name="window"
        ),
        CheckConstraint("frequency_cap >= 1", name="frequency_cap"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    product_line: Mapped[str] = mapped_column(String(20))
    tier: Mapped[str] = mapped_column(String(20))
    last_purchase_on: Mapped[date] = mapped_column(Date)
    sms_addon: Mapped[bool] = mapped_column(Boolean, default=False)
    optout_clause: Mapped[str] = mapped_column(String(160), default=DEFAULT_OPTOUT_CLAUSE)
    optout_language: Mapped[str] = mapped_column(String(10), default="en")
    # R11: the clause on every message, or only when the contact got none in 30 days.
    optout_clause_policy: Mapped[str] = mapped_column(
        String(20), default="every_message", server_default="every_message"
    )
    help_text: Mapped[str] = mapped_column(String(320))
    max_segments: Mapped[int] = mapped_column(SmallInteger, default=1)
    # The sending window, in minutes after local midnight: marketing messages go out only
    # between quiet_start and quiet_end in the recipient's time zone (R14).
    quiet_start: Mapped[int] = mapped_column(SmallInteger, default=DEFAULT_QUIET_START)
    quiet_end: Mapped[int] = mapped_column(SmallInteger, default=DEFAULT_QUIET_END)
    frequency_cap: Mapped[int] = mapped_column(SmallInteger, default=DEFAULT_FREQUENCY_CAP)
    # Credits per segment by region code, with a "default" entry (R3).
    credit_rates: Mapped[dict[str, Any]] = mapped_column(default=lambda: {"default": 1})
    sender_number: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def cohort(self) -> str:
        return "legacy" if self.last_purchase_on < COHORT_CUTOFF else "current"

    def sms_refusal(self) -> SendlineError | None:
        """Why this account may not use SMS (R1, R2), or None when it may."""
        if self.tier not in SMS_TIERS:
            return SmsNotInPlan(
                f"SMS is not available on the {self.tier.title()} tier; it needs Plus, "
                "Professional or Enterprise"
            )
        if self.cohort == "current" and not self.sms_addon:
            return AddonRequired(
                f"account {self.name!r} must buy the SMS add-on before using SMS or credits"
            )
        return None

    @property
    def sms_enabled(self) -> bool:
        return self.sms_refusal() is None

    def require_sms(self) -> None:
        refusal = self.sms_refusal()
        if refusal is not None:
            raise refusal

    @property
    def monthly_free_credits(self) -> int:
        """R2: legacy accounts on an SMS tier get free credits every month."""
        if self.cohort != "legacy" or not self.sms_enabled:
            return 0
        return MONTHLY_FREE_CREDITS.get(self.tier, 0)

    def rate_for(self, region: str | None) -> int:
        """Credits per segment for a recipient region (R3)."""
        rates = self.credit_rates
        return int(rates.get(region or "", rates.get("default", 1)))

    def credit_cost(self, segments: int, region: str | None) -> int:
        return segments * self.rate_for(region)


class CreditBalance(Base):
    """The cached balance, one row per account; the ledger is the record it must equal.

    `free` and `purchased` are what is available to spend; `reserved` is held by open
    reservations. The ledger's free_delta, purchased_delta and reserved_delta columns sum
    to these three numbers at every commit.
    """

    __tablename__ = "credit_balances"
    __table_args__ = (
        CheckConstraint("free >= 0", name="free"),
        CheckConstraint("purchased >= 0", name="purchased"),
        CheckConstraint("reserved >= 0", name="reserved"),
    )

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    free: Mapped[int] = mapped_column(Integer, default=0)
    purchased: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)


class LedgerEntry(Base):
    """One append-only change to a balance (R3)."""

    __tablename__ = "credit_ledger"
    __table_args__ = (
        CheckConstraint(_in("kind", LEDGER_KINDS), name="kind"),
        CheckConstraint("amount >= 0", name="amount"),
        Index("ix_credit_ledger_account_id_id", "account_id", "id"),
        Index(
            "uq_credit_ledger_period",
            "account_id",
            "kind",
            "period",
            unique=True,
            sqlite_where=text("period IS NOT NULL"),
            postgresql_where=text("period IS NOT NULL"),
        ),
        # Not unique: a batch reservation is settled in parts (migration 0005).
        Index(
            "ix_credit_ledger_reservation",
            "reservation_id",
            "kind",
            sqlite_where=text("reservation_id IS NOT NULL"),
            postgresql_where=text("reservation_id IS NOT NULL"),
        ),
        Index(
            "ix_credit_ledger_message",
            "account_id",
            "message_id",
            sqlite_where=text("message_id IS NOT NULL"),
            postgresql_where=text("message_id IS NOT NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(10))
    free_delta: Mapped[int] = mapped_column(Integer, default=0)
    purchased_delta: Mapped[int] = mapped_column(Integer, default=0)
    reserved_delta: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[int | None] = mapped_column(Integer)
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("credit_ledger.id"))
    period: Mapped[str | None] = mapped_column(String(7))
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        CheckConstraint(_in("phone_status", PHONE_STATUSES), name="phone_status"),
        CheckConstraint(_in("sms_consent", CONSENT_STATUSES), name="sms_consent"),
        # Lists an account's contacts in id order, and lets consent events reference
        # (account, contact) so an event can never point at another account's contact.
        UniqueConstraint("account_id", "id"),
        Index(
            "uq_contacts_account_id_email",
            "account_id",
            "email",
            unique=True,
            sqlite_where=text("email IS NOT NULL"),
            postgresql_where=text("email IS NOT NULL"),
        ),
        Index(
            "uq_contacts_account_id_phone_e164",
            "account_id",
            "phone_e164",
            unique=True,
            sqlite_where=text("phone_e164 IS NOT NULL"),
            postgresql_where=text("phone_e164 IS NOT NULL"),
        ),
        # A phone no one can text is matched as submitted (an import's re-run; 0009).
        Index(
            "ix_contacts_account_id_unchecked_phone",
            "account_id",
            "phone",
            sqlite_where=text("phone_e164 IS NULL AND phone IS NOT NULL"),
            postgresql_where=text("phone_e164 IS NULL AND phone IS NOT NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    email: Mapped[str | None] = mapped_column(String(254))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    # R6: exactly as submitted; everything below is derived from it on write.
    phone: Mapped[str | None] = mapped_column(String(64))
    phone_e164: Mapped[str | None] = mapped_column(String(20))
    phone_status: Mapped[str] = mapped_column(String(16), default="no_phone")
    phone_region: Mapped[str | None] = mapped_column(String(3))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Derived from the latest consent event, written in the same transaction (R4).
    sms_consent: Mapped[str] = mapped_column(String(10), default="none")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustomField(Base):
    __tablename__ = "custom_fields"
    __table_args__ = (
        UniqueConstraint("account_id", "key"),
        CheckConstraint(_in("type", FIELD_TYPES), name="type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(10))


class ContactTag(Base):
    __tablename__ = "contact_tags"
    __table_args__ = (Index("ix_contact_tags_tag", "tag"),)

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)


class ContactList(Base):
    __tablename__ = "lists"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ListMember(Base):
    __tablename__ = "list_members"
    __table_args__ = (Index("ix_list_members_contact_id", "contact_id"),)

    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), primary_key=True)
    subscribed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsentEvent(Base):
    """One append-only opt-in or opt-out: the proof a sender needs (R4)."""

    __tablename__ = "consent_events"
    __table_args__ = (
        CheckConstraint(_in("kind", CONSENT_KINDS), name="kind"),
        CheckConstraint(_in("method", CONSENT_METHODS), name="method"),
        ForeignKeyConstraint(["account_id", "contact_id"], ["contacts.account_id", "contacts.id"]),
        # One index serves a contact's history (tenant-scoped) and an account's events.
        Index("ix_consent_events_account_contact", "account_id", "contact_id", "occurred_at"),
        # No AUTOINCREMENT: rows are never deleted, so ids are never reused anyway.
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    method: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(200))
    disclosure: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    occurred_at: Mapped[datetime] = mapped_column()
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Who entered an event captured elsewhere (`contacts opt-in|opt-out`); 0009.
    recorded_by: Mapped[str | None] = mapped_column(String(100))

    @property
    def status(self) -> str:
        return "opted_in" if self.kind == "opt_in" else "opted_out"
