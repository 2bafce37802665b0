"""SMS credits (R2, R3): an append-only ledger and the balance it sums to.

Convention. The balance row holds three buckets: `free` and `purchased` are available
to spend, `reserved` is held by open reservations. Every ledger entry carries the signed
change to each bucket (free_delta, purchased_delta, reserved_delta), so at every commit

    sum(free_delta) == free, sum(purchased_delta) == purchased,
    sum(reserved_delta) == reserved

and `amount` is the size of the operation. A reservation takes free credits first, then
purchased ones, and remembers the split: a release or refund returns each part to the
bucket it came from. Free credits do not roll over: the monthly job (store/monthly.py)
expires what is left, and free credits that come back after their period ended (a late
release or refund) are expired on the spot (R2's rule: `store.settlement.expiry`).

This class owns the ledger: every entry is written by it, by store/settlement.py (the
settling of reservations, on the engine's hot path) or by store/monthly.py, through it.

Reservations. `reserve` holds credits for one message (or none) and `charge`, `release`
and `refund` settle it whole. `reserve_many` holds them for a batch of messages in one
entry; each message keeps its share (`Share`: credits, and how many were free) on its
own row, and is settled on its own or with others of its batch, by entries that name
the batch's reservation (`store.settlement.settle_shares`); the whole-reservation
operations refuse a batch's reservation, and settle through the same code.

Concurrency. Every change locks the account's balance row first (SELECT ... FOR UPDATE
on PostgreSQL; SQLite transactions start with BEGIN IMMEDIATE), so two processes can
never both spend the same credit, and the CHECK constraints (>= 0) stand behind that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendline.errors import (
    Conflict,
    InsufficientCredits,
    InvalidInput,
    InvalidReservationState,
    NotFound,
)
from sendline.store.credit_values import Balance, LedgerAudit, Reservation, Share
from sendline.store.models import Account, CreditBalance, LedgerEntry
from sendline.store.settlement import SettleKind, ledger_row, settle_reservation
from sendline.store.types import utcnow

MAX_PURCHASE = 10_000_000


class Credits:
    """The credits of one account."""

    def __init__(self, session: Session, account_id: int) -> None:
        self._session = session
        self.account_id = account_id

    # -- reading -----------------------------------------------------------------

    def balance(self) -> Balance:
        row = self._session.get(CreditBalance, self.account_id, populate_existing=True)
        if row is None:
            raise NotFound(f"no account with id {self.account_id}")
        return Balance(row.free, row.purchased, row.reserved)

    def ledger(self, limit: int | None = None) -> list[LedgerEntry]:
        """Entries, newest first."""
        query = (
            select(LedgerEntry)
            .where(LedgerEntry.account_id == self.account_id)
            .order_by(LedgerEntry.id.desc())
            .limit(limit)
        )
        return list(self._session.scalars(query))

    def audit(self) -> LedgerAudit:
        sums = self._session.execute(
            select(
                func.coalesce(func.sum(LedgerEntry.free_delta), 0),
                func.coalesce(func.sum(LedgerEntry.purchased_delta), 0),
                func.coalesce(func.sum(LedgerEntry.reserved_delta), 0),
            ).where(LedgerEntry.account_id == self.account_id)
        ).one()
        return LedgerAudit(self.balance(), Balance(int(sums[0]), int(sums[1]), int(sums[2])))

    def reservation(self, reservation_id: int) -> Reservation:
        entry = self._reserve_entry(reservation_id)
        return self._as_reservation(entry)

    def open_reservation_for(self, message_id: int) -> Reservation | None:
        entries = self._session.scalars(
            select(LedgerEntry)
            .where(
                LedgerEntry.account_id == self.account_id,
                LedgerEntry.message_id == message_id,
                LedgerEntry.kind == "reserve",
            )
            .order_by(LedgerEntry.id)
        )
        for entry in entries:
            reservation = self._as_reservation(entry)
            if reservation.state == "open":
                return reservation
        return None

    # -- changing ----------------------------------------------------------------

    def purchase(self, amount: int, *, note: str | None = None) -> LedgerEntry:
        """Buy credits (R2: a current account needs the add-on first). They never expire."""
        self.account().require_sms()
        _check_amount(amount, MAX_PURCHASE)
        row = self.lock_balance()
        return self.append_entry(row, "purchase", amount, purchased=amount, note=note)

    def reserve(self, amount: int, *, message_id: int | None = None) -> Reservation:
        """Hold credits for a message: free ones first, then purchased ones.

        Idempotent per message: reserving again for a message that already holds an open
        reservation of the same amount returns that reservation.
        """
        self.account().require_sms()
        _check_amount(amount, MAX_PURCHASE)
        row = self.lock_balance()
        if message_id is not None:
            existing = self.open_reservation_for(message_id)
            if existing is not None:
                if existing.amount != amount:
                    raise Conflict(
                        f"message {message_id} already holds a reservation of "
                        f"{existing.amount} credits"
                    )
                return existing
        available = row.free + row.purchased
        if amount > available:
            raise InsufficientCredits(f"{amount} credits needed, {available} available")
        entry = self._append_reserve(row, amount, min(row.free, amount), message_id)
        return self._as_reservation(entry, state="open")

    def reserve_many(self, requests: list[tuple[int, int]]) -> list[Share | None]:
        """Reserve for many new messages at once: (message_id, amount) pairs in, each
        message's share of the batch's reservation (None where the balance ran out)
        out, in order. Free credits go first, message by message.

        The pipeline's batch path: one balance lock and one ledger entry for the whole
        batch (naming its message when there is one), instead of a lock and an entry
        per message. Each message keeps its share on its own row, and its settlement
        names the same reservation (`store.settlement.settle_shares`).
        """
        self.account().require_sms()
        row = self.lock_balance()
        placed: list[tuple[int, int, int] | None] = []
        # Plain ints in the loop, the balance row set once: every ORM attribute write is
        # instrumented, and a batch is hundreds of messages.
        free, purchased = row.free, row.purchased
        for message_id, amount in requests:
            _check_amount(amount, MAX_PURCHASE)
            if amount > free + purchased:
                placed.append(None)
                continue
            from_free = min(free, amount)
            free, purchased = free - from_free, purchased - (amount - from_free)
            placed.append((message_id, amount, from_free))
        taken = [share for share in placed if share is not None]
        if not taken:
            return [None] * len(placed)
        alone = len(taken) == 1
        entry = self._append_reserve(
            row,
            sum(share[1] for share in taken),
            row.free - free,
            taken[0][0] if alone else None,
            note=None if alone else f"{len(taken)} messages",
        )
        return [Share(entry.id, share[2]) if share else None for share in placed]

    def charge(self, reservation_id: int) -> Reservation:
        """Settle an open reservation: the held credits are spent."""
        return self._settle(reservation_id, "open", "charge", "charged")

    def release(self, reservation_id: int) -> Reservation:
        """Cancel an open reservation: credits go back to the buckets they came from."""
        return self._settle(reservation_id, "open", "release", "released")

    def refund(self, reservation_id: int) -> Reservation:
        """Give back the credits of a charged reservation (e.g. the provider failed)."""
        return self._settle(reservation_id, "charged", "refund", "refunded")

    # -- building blocks (the operations above, and store/monthly.py) -------------

    def account(self) -> Account:
        """The account (NotFound if it is gone)."""
        account = self._session.get(Account, self.account_id)
        if account is None:
            raise NotFound(f"no account with id {self.account_id}")
        return account

    def lock_balance(self) -> CreditBalance:
        """Lock the balance row for this transaction: every change starts here."""
        row = self._session.scalars(
            select(CreditBalance)
            .where(CreditBalance.account_id == self.account_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
        if row is None:
            raise NotFound(f"no account with id {self.account_id}")
        return row

    def append_entry(
        self,
        row: CreditBalance,
        kind: str,
        amount: int,
        *,
        free: int = 0,
        purchased: int = 0,
        reserved: int = 0,
        message_id: int | None = None,
        reservation_id: int | None = None,
        period: str | None = None,
        note: str | None = None,
    ) -> LedgerEntry:
        """Write one entry and apply it to the balance row, which the caller locked."""
        values = ledger_row(
            self.account_id,
            kind,
            amount,
            utcnow(),
            free=free,
            purchased=purchased,
            reserved=reserved,
            message_id=message_id,
            reservation_id=reservation_id,
            period=period,
            note=note,
        )
        return self.append(row, values)

    def append(self, row: CreditBalance, values: Mapping[str, Any]) -> LedgerEntry:
        """Write one entry's values (`store.settlement.ledger_row`) and apply them to
        the balance row, which the caller locked."""
        deltas = (values["free_delta"], values["purchased_delta"], values["reserved_delta"])
        after = (row.free + deltas[0], row.purchased + deltas[1], row.reserved + deltas[2])
        if min(after) < 0:
            raise InsufficientCredits(
                f"{values['kind']} of {values['amount']} credits would make the balance negative"
            )
        row.free, row.purchased, row.reserved = after
        entry = LedgerEntry(**values)
        self._session.add(entry)
        self._session.flush()
        return entry

    # -- internals ---------------------------------------------------------------

    def _append_reserve(
        self,
        row: CreditBalance,
        amount: int,
        from_free: int,
        message_id: int | None,
        note: str | None = None,
    ) -> LedgerEntry:
        """A reservation of `amount`, `from_free` of it free credits, the rest purchased."""
        return self.append_entry(
            row,
            "reserve",
            amount,
            free=-from_free,
            purchased=-(amount - from_free),
            reserved=amount,
            message_id=message_id,
            note=note,
        )

    def _settle(
        self, reservation_id: int, expected: str, kind: SettleKind, settled: str
    ) -> Reservation:
        """Settle a whole reservation in state `expected`, as a message's settlement
        would (`store.settlement`: the same entries, R2's expiry included)."""
        self.lock_balance()
        entry, state = self._reserve_entry_and_state(reservation_id)
        _expect_state(reservation_id, state, expected, kind)
        part = (entry.message_id, entry.amount, -entry.free_delta)
        settle_reservation(self._session, self.account_id, entry.id, part, kind)
        return self._as_reservation(entry, state=settled)

    def _reserve_entry(self, reservation_id: int) -> LedgerEntry:
        entry = self._session.scalars(
            select(LedgerEntry).where(
                LedgerEntry.id == reservation_id,
                LedgerEntry.account_id == self.account_id,
                LedgerEntry.kind == "reserve",
            )
        ).first()
        if entry is None:
            raise NotFound(f"no reservation {reservation_id} on this account")
        return entry

    def _reserve_entry_and_state(self, reservation_id: int) -> tuple[LedgerEntry, str]:
        """A reservation the whole-reservation operations may settle, and its state."""
        entry = self._reserve_entry(reservation_id)
        if entry.note is not None:
            # Only `reserve_many` notes a reserve entry ("N messages"): settling it whole
            # would settle every message of the batch, each of which keeps its own share.
            raise InvalidReservationState(
                f"reservation {reservation_id} holds credits for {entry.note}; each is "
                "settled on its own, as its message's status moves"
            )
        return entry, self._state(entry.id)

    def _state(self, reservation_id: int) -> str:
        kinds = set(
            self._session.scalars(
                select(LedgerEntry.kind).where(
                    LedgerEntry.reservation_id == reservation_id,
                    LedgerEntry.account_id == self.account_id,
                )
            )
        )
        if "refund" in kinds:
            return "refunded"
        if "charge" in kinds:
            return "charged"
        if "release" in kinds:
            return "released"
        return "open"

    def _as_reservation(self, entry: LedgerEntry, state: str | None = None) -> Reservation:
        return Reservation(
            id=entry.id,
            message_id=entry.message_id,
            amount=entry.amount,
            free=-entry.free_delta,
            purchased=-entry.purchased_delta,
            state=state or self._state(entry.id),
        )


def _check_amount(amount: int, limit: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= limit:
        raise InvalidInput(f"credit amount must be a whole number from 1 to {limit}, not {amount}")


def _expect_state(reservation_id: int, state: str, expected: str, action: str) -> None:
    if state != expected:
        raise InvalidReservationState(
            f"cannot {action} reservation {reservation_id}: it is {state}, not {expected}"
        )
