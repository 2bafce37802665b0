"""What the send checks decide for one message, and the reservers they count credits
with: shared by the pipeline (`Pipeline.check_batch`), a release and preflight."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sendline.store.credit_values import Share


@dataclass(frozen=True, slots=True)
class Hold:
    reason: str
    detail: str


# A message that passed every check but the balance (R3), in a batch.
NO_CREDITS = Hold("insufficient_credits", "the account has no credits left for this message")


@dataclass(frozen=True, slots=True)
class Draft:
    """A message that passed the content checks: what would be sent, and its cost."""

    body: str
    encoding: str
    segments: int
    credits: int
    clause: bool = True  # the body carries opt-out instructions (R11)


@dataclass(frozen=True, slots=True)
class Checked:
    """One message's way through `check_batch`: queued (`verdict` is its Draft, with its
    credits' share and due time) or held (`verdict` is the Hold). `draft` is what it
    renders to, kept when it is held at the cap or for credits: the body people see in
    `messages list` is the body a release sends (unless the contact changed since)."""

    verdict: Draft | Hold
    draft: Draft | None = None
    share: Share | None = None
    due_at: datetime | None = None

    def columns(self) -> dict[str, Any]:
        """The message's columns this outcome decides (every outcome the same keys)."""
        draft, share, verdict = self.draft, self.share, self.verdict
        row: dict[str, Any] = {
            "body": draft.body if draft else None,
            "encoding": draft.encoding if draft else None,
            "segments": draft.segments if draft else 0,
            "credits": draft.credits if draft else 0,
            "clause_included": draft.clause if draft else False,
            "reservation_id": share.reservation_id if share else None,
            "credits_free": share.free if share else 0,
            "due_at": self.due_at,
        }
        if isinstance(verdict, Hold):
            return row | {"status": "held", "held_reason": verdict.reason, "detail": verdict.detail}
        return row | {"status": "queued", "held_reason": None, "detail": None}


Reserve = Callable[[list[tuple[int, int]]], list[Share | None]]


class DryRun:
    """A reserver that counts against the balance and writes nothing (preflight): the
    same first-fit order as the credits store's `reserve_many`, a message the balance
    cannot cover held and the next ones still tried."""

    def __init__(self, available: int) -> None:
        self.available = available
        self.reserved = 0
        self.short: dict[int, str] = {}  # ref -> why the balance did not cover it

    def __call__(self, wanted: list[tuple[int, int]]) -> list[Share | None]:
        shares: list[Share | None] = []
        for ref, amount in wanted:
            left = self.available - self.reserved
            if amount > left:
                self.short[ref] = f"{amount} credits needed, {left} left"
                shares.append(None)
                continue
            self.reserved += amount
            shares.append(_DRY_SHARE)
        return shares


_DRY_SHARE = Share(reservation_id=0, free=0)
