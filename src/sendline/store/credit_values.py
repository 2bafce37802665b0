"""What `store.credits` answers: balances, reservations, a message's share of one, and
the ledger audit. Plain values, apart from the ledger's workings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Balance:
    free: int
    purchased: int
    reserved: int

    @property
    def available(self) -> int:
        return self.free + self.purchased

    @property
    def total(self) -> int:
        return self.free + self.purchased + self.reserved


@dataclass(frozen=True)
class Reservation:
    id: int
    message_id: int | None
    amount: int
    free: int
    purchased: int
    state: str  # open | charged | released | refunded


@dataclass(frozen=True)
class Share:
    """A message's part of a reservation: which one, and how many of its credits came
    from free ones (a release returns them there)."""

    reservation_id: int
    free: int


@dataclass(frozen=True)
class LedgerAudit:
    """The cached balance beside the sums of the ledger: they must be equal."""

    balance: Balance
    ledger: Balance

    @property
    def ok(self) -> bool:
        return self.balance == self.ledger
