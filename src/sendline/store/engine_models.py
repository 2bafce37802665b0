"""Tables of the engine: automations and their versions, runs, messages, inbound texts,
the workers' heartbeats and the shared rate-limit state.

The database is the queue: a message or an automation run is a row with a status and a
due time, and workers claim due rows (FOR UPDATE SKIP LOCKED on PostgreSQL). Nothing is
kept only in a worker's memory, so a crash or restart loses nothing (R18).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from sendline.store.models import Base, _in
from sendline.store.types import utcnow

AUTOMATION_STATUSES = ("draft", "active", "paused", "archived")
RUN_STATUSES = ("active", "completed", "exited", "failed")
# R16. `unknown`: the provider call's outcome is not known (timeout); it is reconciled,
# never blindly sent again (R17).
MESSAGE_STATUSES = (
    "queued",
    "sending",
    "unknown",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "held",
    "canceled",
)
MESSAGE_KINDS = ("marketing", "reply")  # reply: opt-out confirmations and help texts
REPLY_ACTIONS = ("opt_out", "opt_in", "help", "review", "none")
REVIEW_DECISIONS = ("opt_out", "not_opt_out")


def _partial(column: str) -> dict[str, Any]:
    condition = text(f"{column} IS NOT NULL")
    return {"sqlite_where": condition, "postgresql_where": condition}


class Automation(Base):
    __tablename__ = "automations"
    __table_args__ = (
        CheckConstraint(_in("status", AUTOMATION_STATUSES), name="status"),
        Index("uq_automations_account_id_name", "account_id", "name", unique=True),
        # Triggers find the automations to enter by (account, trigger type, key).
        Index("ix_automations_trigger", "account_id", "trigger_type", "trigger_key"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default="draft")
    # The version new runs start on; running contacts keep the version they started on.
    current_version_id: Mapped[int | None] = mapped_column(Integer)
    trigger_type: Mapped[str] = mapped_column(String(20))
    trigger_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AutomationVersion(Base):
    __tablename__ = "automation_versions"
    __table_args__ = (
        Index(
            "uq_automation_versions_automation_id_number", "automation_id", "number", unique=True
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    automation_id: Mapped[int] = mapped_column(ForeignKey("automations.id"))
    number: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AutomationRun(Base):
    """One contact's way through one automation version: its position and next due time."""

    __tablename__ = "automation_runs"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        Index("ix_automation_runs_due", "status", "due_at"),
        Index("ix_automation_runs_contact_id", "contact_id", "status"),
        # Re-entry "once": one run per (automation, contact) ever; a date trigger adds the
        # date so each anniversary enters once. NULL for re-entry "every time".
        Index(
            "uq_automation_runs_enrollment_key",
            "enrollment_key",
            unique=True,
            **_partial("enrollment_key"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    automation_id: Mapped[int] = mapped_column(ForeignKey("automations.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("automation_versions.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    status: Mapped[str] = mapped_column(String(10), default="active")
    step_id: Mapped[str | None] = mapped_column(String(100))  # the next step to run
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime | None] = mapped_column()
    wait_until: Mapped[datetime | None] = mapped_column()
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enrollment_key: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    """An outbound SMS: the queue row, its status (R16) and why it is held, if it is."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
        CheckConstraint(_in("kind", MESSAGE_KINDS), name="kind"),
        CheckConstraint("status <> 'held' OR held_reason IS NOT NULL", name="held_reason"),
        Index("ix_messages_due", "status", "due_at"),
        Index("ix_messages_contact_id_created_at", "contact_id", "created_at"),
        Index("ix_messages_account_id_status", "account_id", "status"),
        # The API's list, newest first in keyset pages (migration 0016).
        Index("ix_messages_account_id_id", "account_id", "id"),
        Index("uq_messages_provider_id", "provider_id", unique=True, **_partial("provider_id")),
        Index(
            "uq_messages_idempotency_key",
            "idempotency_key",
            unique=True,
            **_partial("idempotency_key"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    automation_id: Mapped[int | None] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(Integer)
    step_id: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10), default="marketing")
    template: Mapped[str | None] = mapped_column(Text)  # kept so a held message can be re-rendered
    # The custom event's payload it was rendered from (migration 0008): a release renders
    # %EVENT.*% tags with the values the event carried, not with none.
    event: Mapped[dict[str, Any] | None] = mapped_column()
    # An order or shipping text (issue 12 #10): no quiet hours (R14), not capped or
    # counted by the frequency cap (R15); consent (R4, R13) and the clause (R11) apply.
    transactional: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The body sent carries opt-out instructions (R11): what an account's "once every
    # 30 days" clause policy looks back for.
    clause_included: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    to_e164: Mapped[str | None] = mapped_column(String(20))
    region: Mapped[str | None] = mapped_column(String(3))
    body: Mapped[str | None] = mapped_column(Text)  # as sent, opt-out clause included
    encoding: Mapped[str | None] = mapped_column(String(5))
    segments: Mapped[int] = mapped_column(Integer, default=0)
    credits: Mapped[int] = mapped_column(Integer, default=0)
    # How many of `credits` came from free ones: a release returns them there (R2).
    credits_free: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reservation_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))  # "undelivered" has 11 (migration 0003)
    held_reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    deadline_at: Mapped[datetime | None] = mapped_column()
    provider: Mapped[str | None] = mapped_column(String(20))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(32))
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None] = mapped_column()
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboundMessage(Base):
    """A text a contact sent us, and what it did (R12)."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        CheckConstraint(_in("action", REPLY_ACTIONS), name="action"),
        CheckConstraint(_in("review_decision", REVIEW_DECISIONS), name="review_decision"),
        Index("ix_inbound_messages_contact_id", "contact_id", "received_at"),
        Index("ix_inbound_messages_review", "account_id", "action", "reviewed_at"),
        Index(
            "uq_inbound_messages_provider_id", "provider_id", unique=True, **_partial("provider_id")
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    from_number: Mapped[str] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(10))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column()
    # A review's decision (REVIEW_DECISIONS) and who made it (`sendline inbox review`).
    review_decision: Mapped[str | None] = mapped_column(String(12))
    reviewed_by: Mapped[str | None] = mapped_column(String(100))


class RateLimit(Base):
    """Shared rate-limit state (GCRA): the theoretical arrival time of the next unit.

    One row per key (sender number, account); every worker on every machine updates the
    same row, so the configured rate holds however many workers there are.
    """

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    tat: Mapped[float] = mapped_column(Float, default=0.0)  # epoch seconds


class WorkerHeartbeat(Base):
    """A running worker's heartbeat: renewed every second or so while it lives.

    A claim (`messages.claimed_by`) whose worker's heartbeat has expired is free for
    reconciliation at once, without waiting for the claim's lease: a `kill -9`ed worker
    is recovered from in seconds. Each worker writes its own expiry (when it is to be
    taken for dead), so workers need not agree on an interval; one that stops cleanly
    expires its row at once.
    """

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # messages.claimed_by
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


PROVIDER_KINDS = ("twilio", "http")


class ProviderConfig(Base):
    """A carrier an account sends through, in its failover order (`position`, 1 first).

    `settings` holds what may be shown (the Twilio account SID, the from-number, an HTTP
    gateway's YAML config); `secret` the sealed secrets (`store.secret_box`: auth token,
    gateway keys), never in clear. `sender_number` (E.164) is what inbound texts are
    addressed to: an inbound webhook finds the account, and the token that signed the
    request, by it. An account with no provider sends through the sandbox.
    """

    __tablename__ = "provider_configs"
    __table_args__ = (
        CheckConstraint(_in("kind", PROVIDER_KINDS), name="kind"),
        UniqueConstraint("account_id", "position", name="uq_provider_configs_account_position"),
        Index("ix_provider_configs_sender_number", "sender_number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(100))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secret: Mapped[str | None] = mapped_column(Text)
    sender_number: Mapped[str | None] = mapped_column(String(20))
    # Twilio (and most carriers) answer STOP themselves on long codes and toll-free
    # numbers; then Sendline records the opt-out but sends no confirmation of its own,
    # so the contact gets exactly one (R12).
    carrier_confirms_optout: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


API_KEY_KINDS = ("account", "admin")


class ApiKey(Base):
    """A key the HTTP API accepts: an account's (`account`) or the operator's (`admin`,
    no account). Only the SHA-256 of the full key is stored; `prefix` is the part shown
    to people so they can tell their keys apart. A revoked key stays, for the record."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(_in("kind", API_KEY_KINDS), name="kind"),
        UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        Index("ix_api_keys_account_id", "account_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
