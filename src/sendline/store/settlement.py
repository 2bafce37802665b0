"""Settling reserved credits (R2, R3): the ledger's charge, release and refund entries,
for any number of messages at once, and R2's expiry rule, written once.

Part of the Credits aggregate (store/credits.py), which owns the ledger. A message's
status decides what it costs (`engine.statuses.settlement`); this module writes it. The
whole-reservation operations (`Credits.charge`, `release`, `refund`) settle through here
too, so a message settled alone and a blast's thousands settled together write the same
entries. The dispatcher settles hundreds of messages per transaction, so `settle_shares`
writes one entry per reservation for all of them (a batch's messages share one
reservation, see `Credits.reserve_many`), each message's share taken from its own row.

R2: free credits do not outlive their month. The monthly job (store/monthly.py) closes a
month with entries that carry its `period`, and expires the free credits left in the
bucket. Free credits that a reservation held across the close come back later (a release
or refund) and expire the moment they do: they belonged to the closed month. Both are
the same `expiry` entry; `returned_late` decides which returned credits it takes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from sendline.store.batch_writes import insert_rows
from sendline.store.engine_models import Message
from sendline.store.models import CreditBalance, LedgerEntry
from sendline.store.types import utcnow

SettleKind = Literal["charge", "release", "refund"]
# A message's share of its reservation, as the settling statements select or return it.
SHARE_COLUMNS = (
    Message.id,
    Message.account_id,
    Message.reservation_id,
    Message.credits,
    Message.credits_free,
)
# One message's part of a reservation: its id (None: the reservation names none), its
# credits, and how many of them were free.
Part = tuple[int | None, int, int]

MONTH_ENDED = "unused free credits expire at the end of their month"
RETURNED_LATE = "free credits returned after their month ended"
_LEDGER = cast(Table, LedgerEntry.__table__)


def settle_shares(session: Session, shares: Iterable[Sequence[Any]], kind: SettleKind) -> int:
    """Settle messages' credits: rows starting with SHARE_COLUMNS (those without a reservation are
    skipped), each just moved by `engine.statuses.settlement` to `kind`. Returns how
    many were settled.

    One ledger entry per reservation and account per call, whatever the number of its
    messages: a blast settles hundreds of messages per transaction, and two entries per
    message were most of its writes. The entry names the message when it settles one.
    Accounts are locked in id order, so two workers settling overlapping accounts cannot
    deadlock.
    """
    by_account: dict[int, dict[int, list[Part]]] = defaultdict(dict)
    for message_id, account_id, reservation_id, credits, free, *_ in shares:
        if reservation_id is not None:
            groups = by_account[account_id]
            groups.setdefault(reservation_id, []).append((message_id, credits, free))
    for account_id in sorted(by_account):
        # Lock the balance first, as Credits does: every change to it starts there.
        session.execute(
            select(CreditBalance.account_id)
            .where(CreditBalance.account_id == account_id)
            .with_for_update()
        )
        _settle_account(session, account_id, by_account[account_id], kind)
    return sum(len(group) for groups in by_account.values() for group in groups.values())


def settle_reservation(
    session: Session, account_id: int, reservation_id: int, part: Part, kind: SettleKind
) -> None:
    """Settle one reservation whole (`Credits.charge`, `release`, `refund`), which the
    caller checked may be; the caller holds the account's balance lock."""
    _settle_account(session, account_id, {reservation_id: [part]}, kind)


def expiry(
    account_id: int,
    amount: int,
    now: datetime,
    *,
    period: str | None = None,
    reservation_id: int | None = None,
) -> dict[str, Any]:
    """R2's `expire` entry: `amount` free credits gone, at the close of a month (`period`:
    the month closed, as the monthly job records it) or as they come back from a
    reservation after their month closed (`reservation_id`)."""
    note = MONTH_ENDED if reservation_id is None else RETURNED_LATE
    return ledger_row(
        account_id,
        "expire",
        amount,
        now,
        free=-amount,
        reservation_id=reservation_id,
        period=period,
        note=note,
    )


def returned_late(free: int, reservation_id: int, last_close: int | None) -> bool:
    """R2: whether free credits coming back from a reservation expire at once: when a
    month was closed (`last_close`) after it was made."""
    return bool(free) and last_close is not None and last_close > reservation_id


def last_close(session: Session, account_id: int) -> int | None:
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


def ledger_row(
    account_id: int,
    kind: str,
    amount: int,
    now: datetime,
    *,
    free: int = 0,
    purchased: int = 0,
    reserved: int = 0,
    message_id: int | None = None,
    reservation_id: int | None = None,
    period: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """One ledger entry's values, every column named (a batch insert needs them all)."""
    return {
        "account_id": account_id,
        "kind": kind,
        "amount": amount,
        "free_delta": free,
        "purchased_delta": purchased,
        "reserved_delta": reserved,
        "message_id": message_id,
        "reservation_id": reservation_id,
        "period": period,
        "note": note,
        "created_at": now,
    }


def _settle_account(
    session: Session, account_id: int, groups: dict[int, list[Part]], kind: SettleKind
) -> None:
    """One account's settlement: its entries in one insert, its balance in one update."""
    close = last_close(session, account_id) if kind != "charge" else None
    entries = _entries(account_id, groups, kind, close, utcnow())
    insert_rows(session, _LEDGER, entries)
    free, purchased, reserved = (
        sum(entry[column] for entry in entries)
        for column in ("free_delta", "purchased_delta", "reserved_delta")
    )
    session.execute(
        update(CreditBalance)
        .where(CreditBalance.account_id == account_id)
        .values(
            free=CreditBalance.free + free,
            purchased=CreditBalance.purchased + purchased,
            reserved=CreditBalance.reserved + reserved,
        )
        .execution_options(synchronize_session=False)
    )


def _entries(
    account_id: int,
    groups: dict[int, list[Part]],
    kind: SettleKind,
    close: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The entries settling each reservation's parts, with R2's expiry where it applies."""
    entries: list[dict[str, Any]] = []
    for reservation_id, group in groups.items():
        amount = sum(credits for _, credits, _ in group)
        free = sum(part for _, _, part in group)
        returned = kind != "charge"  # credits go back to the buckets they came from
        alone = len(group) == 1
        entries.append(
            ledger_row(
                account_id,
                kind,
                amount,
                now,
                free=free if returned else 0,
                purchased=amount - free if returned else 0,
                reserved=0 if kind == "refund" else -amount,
                message_id=group[0][0] if alone else None,
                reservation_id=reservation_id,
                note=None if alone else f"{len(group)} messages",
            )
        )
        if returned and returned_late(free, reservation_id, close):
            entries.append(expiry(account_id, free, now, reservation_id=reservation_id))
    return entries
