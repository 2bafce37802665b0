"""Outbound webhooks: the user's endpoints and the log of every delivery attempt.

An endpoint is a cursor over its account's `account_events` (store/event_models.py):
`cursor` is the id of the last event it acknowledged, so the next event is the first
one of its kinds above it. One event at a time, in id order: an endpoint that is down
gets every event once it is back, in the order they happened. The head event is
retried with exponential backoff (`attempts`, `next_attempt_at`) for a day, after which
the endpoint is disabled with the reason shown to its owner.

A worker claims an endpoint before delivering to it (`claimed_by`, `claimed_until`: a
lease), so two workers never deliver to one endpoint at once and the order holds.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from sendline.store.models import Base
from sendline.store.types import utcnow

MAX_URL = 2048
MAX_REASON = 500


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index("ix_webhook_endpoints_account_id_id", "account_id", "id"),
        Index("ix_webhook_endpoints_enabled_next_attempt_at", "enabled", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(MAX_URL))
    # The signing secret (`whsec_...`), sealed with SENDLINE_SECRET_KEY: it must be
    # read back to sign, so it cannot be a hash; sealed, a stolen backup cannot forge.
    secret: Mapped[str] = mapped_column(Text)
    # The event kinds it receives (a subset of event_models.EVENT_KINDS).
    events: Mapped[list[str]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(MAX_REASON))
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    # The head event's failures: how many in a row, since when, and when to try again.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column()
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One POST of one event to one endpoint, and how it went."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_webhook_deliveries_at", "at"),  # pruning the log (engine/webhooks.py)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(Integer)
    event_kind: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)  # None: no answer (see error)
    error: Mapped[str | None] = mapped_column(String(MAX_REASON))
    duration_ms: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column()  # the retry, when one is due
