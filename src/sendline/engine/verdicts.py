"""What the send checks decide for one message, and the reservers they count credits
with: shared by the pipeline (`Pipeline.check_batch`), a release and preflight."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sendline.store.credit_values import Share


@dataclass(frozen=True, slots=True)
class Hold:
    reason: str
    detail: str


# What a person does about each hold reason: said by the CLI's preflight report, the
# overview's "needs action" list and the held messages page alike.
HOLD_FIXES = {
    "sms_not_in_plan": "SMS needs the Plus, Professional or Enterprise tier",
    "sms_addon_required": "buy the SMS add-on",
    "no_consent": "no SMS opt-in recorded: collect one (with its disclosure) first",
    "opted_out": "they opted out: they must not be texted",
    "no_phone": "the default phone field is empty",
    "invalid_phone": "fix the number: +country code outside the US, area code in the US",
    "landline": "a landline cannot receive SMS",
    "template_error": "the template uses a tag that no longer exists",
    "empty": "personalized to nothing: give the tags a fallback, %FIRSTNAME|there%",
    "public_shortener": "a contact's value holds a public shortener link",
    "too_long": "too long once personalized: shorten it or allow more segments",
    "frequency_cap": "already texted up to the cap in the last 24 hours",
    "insufficient_credits": "not enough credits: buy more",
}


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


# A named tuple, not a dataclass: a blast makes one per message, and a tuple is the
# cheapest object to build.
class Checked(NamedTuple):
    """One message's way through `check_batch`: queued (`verdict` is its Draft, with its
    credits' share and due time) or held (`verdict` is the Hold). `draft` is what it
    renders to, kept when it is held at the cap or for credits: the body people see in
    `messages list` is the body a release sends (unless the contact changed since)."""

    verdict: Draft | Hold
    draft: Draft | None = None
    share: Share | None = None
    due_at: datetime | None = None

    def columns(self) -> dict[str, Any]:
        """The message's columns this outcome decides (every outcome the same keys), in
        one dict literal: the blast builds one per message."""
        draft, share = self.draft, self.share
        held = self.verdict if isinstance(self.verdict, Hold) else None
        return {
            "status": "queued" if held is None else "held",
            "held_reason": None if held is None else held.reason,
            "detail": None if held is None else held.detail,
            "body": None if draft is None else draft.body,
            "encoding": None if draft is None else draft.encoding,
            "segments": 0 if draft is None else draft.segments,
            "credits": 0 if draft is None else draft.credits,
            "clause_included": False if draft is None else draft.clause,
            "reservation_id": None if share is None else share.reservation_id,
            "credits_free": 0 if share is None else share.free,
            "due_at": self.due_at,
        }


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
