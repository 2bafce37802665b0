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
already charged (carriers do not bill a failed send); a canceled one is released. The
dispatcher settles hundreds of messages per transaction, so `settle_shares` writes one
ledger entry per reservation for all of them (a batch's messages share one reservation,
see `Credits.reserve_many`), each message's share taken from its own row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from sendline.providers.base import DeliveryReport, ProviderRecord
from sendline.store.engine_models import Message
from sendline.store.models import CreditBalance, LedgerEntry
from sendline.store.rows import insert_rows
from sendline.store.sets import among, unindexed
from sendline.store.types import utcnow

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

SettleKind = Literal["charge", "release", "refund"]
_LEDGER = cast(Table, LedgerEntry.__table__)


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
        matched.update(
            session.scalars(
                update(Message)
                .where(
                    among(session, Message.provider_id, provider_ids),
                    unindexed(Message.status) == "sent",
                )
                .values(**values)
                .returning(Message.provider_id)
                .execution_options(synchronize_session=False)
            )
        )
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


# A message's share of its reservation, as the settling statements select or return it.
SHARE_COLUMNS = (
    Message.id,
    Message.account_id,
    Message.reservation_id,
    Message.credits,
    Message.credits_free,
)
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


def settle_shares(session: Session, shares: Iterable[Sequence[Any]], kind: SettleKind) -> int:
    """Settle messages' credits: rows of SHARE_COLUMNS (those without a reservation are
    skipped), each just moved by `settlement` to `kind`. Returns how many were settled.

    One ledger entry per reservation and account per call, whatever the number of its
    messages: a blast settles hundreds of messages per transaction, and two entries per
    message were most of its writes. The entry names the message when it settles one.
    Accounts are locked in id order, so two workers settling overlapping accounts cannot
    deadlock.
    """
    by_account: dict[int, dict[int, list[tuple[int, int, int]]]] = defaultdict(dict)
    for message_id, account_id, reservation_id, credits, free in shares:
        if reservation_id is not None:
            groups = by_account[account_id]
            groups.setdefault(reservation_id, []).append((message_id, credits, free))
    for account_id in sorted(by_account):
        _settle_account(session, account_id, by_account[account_id], kind)
    return sum(len(group) for groups in by_account.values() for group in groups.values())


def _settle_account(
    session: Session,
    account_id: int,
    groups: dict[int, list[tuple[int, int, int]]],
    kind: SettleKind,
) -> None:
    # Lock the balance first, as Credits does: every change to it starts there.
    session.execute(
        select(CreditBalance.account_id)
        .where(CreditBalance.account_id == account_id)
        .with_for_update()
    )
    last_period_id = _last_period_entry(session, account_id) if kind != "charge" else None
    now = utcnow()
    entries: list[dict[str, Any]] = []
    totals = {"free": 0, "purchased": 0, "reserved": 0}
    for reservation_id, group in groups.items():
        amount = sum(credits for _, credits, _ in group)
        free = sum(part for _, _, part in group)
        deltas = {"free": 0, "purchased": 0, "reserved": 0 if kind == "refund" else -amount}
        if kind != "charge":  # credits go back to the buckets they came from
            deltas["free"], deltas["purchased"] = free, amount - free
        entry = _entry(account_id, kind, amount, deltas, reservation_id, now)
        entry["message_id"] = group[0][0] if len(group) == 1 else None
        entry["note"] = None if len(group) == 1 else f"{len(group)} messages"
        entries.append(entry)
        for bucket, delta in deltas.items():
            totals[bucket] += delta
        # R2: free credits coming back after their month was closed expire at once.
        if kind != "charge" and free and last_period_id and last_period_id > reservation_id:
            expire = {"free": -free, "purchased": 0, "reserved": 0}
            entries.append(_entry(account_id, "expire", free, expire, reservation_id, now))
            entries[-1]["note"] = "free credits returned after their month ended"
            totals["free"] -= free
    insert_rows(session, _LEDGER, entries)
    session.execute(
        update(CreditBalance)
        .where(CreditBalance.account_id == account_id)
        .values(
            free=CreditBalance.free + totals["free"],
            purchased=CreditBalance.purchased + totals["purchased"],
            reserved=CreditBalance.reserved + totals["reserved"],
        )
        .execution_options(synchronize_session=False)
    )


def _last_period_entry(session: Session, account_id: int) -> int | None:
    """The newest entry that closed or opened a month (a few per year per account).

    Deliberately no ORDER BY / LIMIT: those lure PostgreSQL into walking the account's
    whole ledger backwards when there is no such entry; this way it reads the small
    partial index on period.
    """
    ids = session.scalars(
        select(LedgerEntry.id).where(
            LedgerEntry.account_id == account_id, LedgerEntry.period.is_not(None)
        )
    ).all()
    return max(ids, default=None)


def _entry(
    account_id: int,
    kind: str,
    amount: int,
    deltas: dict[str, int],
    reservation_id: int,
    now: datetime,
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "kind": kind,
        "amount": amount,
        "free_delta": deltas["free"],
        "purchased_delta": deltas["purchased"],
        "reserved_delta": deltas["reserved"],
        "message_id": None,
        "reservation_id": reservation_id,
        "period": None,
        "note": None,
        "created_at": now,
    }
