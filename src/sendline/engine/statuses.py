"""Message statuses (R16): their order, delivery reports, and what each status costs.

Statuses only move forward:

    queued, held  <  sending  <  unknown  <  sent  <  delivered | undelivered | failed

and `canceled` is final too. Provider callbacks arrive late, twice or out of order (a
`sent` callback after `delivered` is common with carriers that batch receipts), so a
report that would move a message backwards or sideways between final statuses is
ignored: the first final status wins.

The only backward move in the whole engine is the dispatcher's own "un-claim" (a
transient error, a graceful shutdown, or reconciliation proving the provider never got
the message): `sending`/`unknown` back to `queued`. It never goes through `advance`.

Credits follow the status. A message the provider accepted is charged (carriers bill
`undelivered` messages too); one that `failed` is released, or refunded if it was
already charged (carriers do not bill a failed send); a canceled one is released. This
module decides which (`settlement`); the ledger's owner writes it
(`store.settlement.settle_shares`, set-based: one entry per reservation, whatever the
number of its messages).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sendline.providers.base import DeliveryReport, ProviderRecord
from sendline.store import activity
from sendline.store.batch_filter import among, unindexed
from sendline.store.engine_models import Message
from sendline.store.settlement import SettleKind, settle_shares

RANK: dict[str, int] = {
    "queued": 0,
    "held": 0,
    "sending": 1,
    "unknown": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
}
FINAL = frozenset({"delivered", "undelivered", "failed", "canceled"})
# The provider has the message: these are billed.
ACCEPTED = frozenset({"sent", "delivered", "undelivered"})
REPORTABLE = frozenset({"sent", "delivered", "undelivered", "failed"})


def can_advance(current: str, new: str) -> bool:
    """True when a message may move from `current` to `new` (strictly forward)."""
    if current in FINAL or new not in RANK:
        return False
    return RANK[new] > RANK[current]


def advance(message: Message, new_status: str) -> bool:
    """Move `message` forward to `new_status`; False (and no change) when that is not forward."""
    if not can_advance(message.status, new_status):
        return False
    message.status = new_status
    return True


def apply_delivery_report(
    session: Session, report: DeliveryReport, now: datetime
) -> Message | None:
    """Apply one status callback; None when no message carries its provider id (yet).

    Safe to call with late, duplicate and out-of-order reports. A message still
    `sending` or `unknown` that gets a report is known from then on: the provider had
    it, so its credits are settled here.
    """
    if report.status not in REPORTABLE:
        return None
    message = session.scalars(
        select(Message)
        .where(Message.provider_id == report.provider_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if message is None:
        return None
    old_status = message.status
    if not advance(message, report.status):
        return message
    at = report.occurred_at or now
    if report.status == "delivered":
        message.delivered_at = at
    if message.sent_at is None and report.status in ACCEPTED:
        message.sent_at = at
    if report.error_code:
        message.error_code = report.error_code
    message.updated_at = now
    settle_message(session, message, old_status)
    session.flush()
    _record(session, message, now)
    return message


def apply_delivery_reports(
    session: Session, reports: Sequence[DeliveryReport], now: datetime
) -> set[str]:
    """Apply many status callbacks; returns the provider ids that matched a message.

    The common case, a `sent` message becoming delivered or undelivered, changes no
    credits and is one UPDATE per (status, error code, time) group. Everything else
    (duplicates, late or out-of-order reports, failures, unknown messages) takes the
    one-by-one path above, which handles it all.
    """
    groups: dict[tuple[str, str | None, datetime], list[str]] = defaultdict(list)
    for report in reports:
        if report.status in ("delivered", "undelivered"):
            groups[(report.status, report.error_code, report.occurred_at or now)].append(
                report.provider_id
            )
    matched: set[str] = set()
    for (status, error_code, at), provider_ids in groups.items():
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status == "delivered":
            values["delivered_at"] = at
        if error_code:
            values["error_code"] = error_code
        rows = session.execute(
            update(Message)
            .where(
                among(session, Message.provider_id, provider_ids),
                unindexed(Message.status) == "sent",
            )
            .values(**values)
            .returning(Message.provider_id, Message.id, Message.account_id, Message.contact_id)
            .execution_options(synchronize_session=False)
        ).all()
        matched.update(row[0] for row in rows if row[0] is not None)
        keys = [(row[1], row[2], row[3]) for row in rows]
        activity.message_statuses(session, keys, status, now, error_code=error_code or None)
    for report in reports:
        if report.provider_id not in matched and apply_delivery_report(session, report, now):
            matched.add(report.provider_id)
    return matched


def adopt_record(
    session: Session, message: Message, record: ProviderRecord, provider: str, now: datetime
) -> None:
    """Take what the provider knows of a message whose outcome we lost (reconciliation):
    its id and status; the provider had it, so its credits are settled accordingly."""
    old_status = message.status
    status = record.status if record.status in REPORTABLE else "sent"
    if not advance(message, status):
        return
    message.provider = provider
    message.provider_id = record.provider_id
    message.error_code = record.error_code
    message.sent_at = message.sent_at or now
    if status == "delivered":
        message.delivered_at = now
    message.detail = "reconciled with the provider after an unknown outcome"
    message.updated_at = now
    settle_message(session, message, old_status)
    session.flush()
    _record(session, message, now)


def _record(session: Session, message: Message, now: datetime) -> None:
    """The status a message just reached, in its activity log."""
    data = activity.status_data(
        message.status, message.detail, message.error_code, message.provider_id
    )
    event = activity.NewEvent(
        message.account_id, activity.STATUS, message.id, message.contact_id, data
    )
    activity.record(session, [event], now)


OPEN = frozenset({"queued", "sending", "unknown"})  # reserved, not yet settled


def settlement(old_status: str, new_status: str) -> SettleKind | None:
    """What a move from `old_status` to `new_status` does to the message's credits.

    A status moves forward once (R16), under the message's row lock, so a message is
    settled exactly once for each of these moves: the move is the guard."""
    if not can_advance(old_status, new_status):
        return None
    if old_status in OPEN and new_status in ACCEPTED:
        return "charge"
    if old_status in OPEN and new_status in ("failed", "canceled"):
        return "release"
    if old_status in ACCEPTED and new_status == "failed":
        # The carrier reported a failure after accepting: it does not bill those.
        return "refund"
    return None


def settle_message(session: Session, message: Message, old_status: str) -> None:
    """Settle one message's credits for the status it just reached (the slow path)."""
    kind = settlement(old_status, message.status)
    if kind is not None:
        share = (message.id, message.account_id, message.reservation_id)
        settle_shares(session, [(*share, message.credits, message.credits_free)], kind)
