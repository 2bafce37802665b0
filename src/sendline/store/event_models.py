"""The account's activity log: one row per thing a user (or their systems) may want to
hear about, written in the same transaction as the change it records.

It is both a message's status history (`GET /api/v1/messages/{id}`) and the outbox of
the outbound webhooks: a delivery loop reads it in id order, so an endpoint that was
down gets every event once, in the order it happened. Written by one function,
`store/activity.py`, never by hand.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from sendline.store.models import Base, _in
from sendline.store.types import utcnow

# What a webhook endpoint can subscribe to.
#   message.status   a message changed status (queued, sending, sent, delivered, failed,
#                    undelivered, canceled...); data: status, detail, error_code
#   message.held     a message was held by a send check; data: reason, detail
#   contact.opted_out / contact.opted_in   consent changed; data: method, source
#   inbound.received a contact's text arrived; data: inbound_id, body, action
EVENT_KINDS = (
    "message.status",
    "message.held",
    "contact.opted_out",
    "contact.opted_in",
    "inbound.received",
)


class AccountEvent(Base):
    __tablename__ = "account_events"
    __table_args__ = (
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),
        Index("ix_account_events_account_id_id", "account_id", "id"),
        Index("ix_account_events_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    # No foreign keys on these two: the log outlives a deleted contact (R-compliance:
    # an opt-out is evidence) and is written in bulk beside batch inserts of messages.
    message_id: Mapped[int | None] = mapped_column(Integer)
    contact_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
