"""The inbox: texts contacts sent, what each did, and the review queue (R12).

Keyword replies (STOP, START, HELP) act at once; free-text revocations ("please stop
texting me") wait for a person, who sees them here and decides (`review`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.inbound import review
from sendline.errors import InvalidInput
from sendline.services import resolve_account
from sendline.store.engine_models import InboundMessage

MAX_LIST = 1000

_DONE = {
    "opt_out": "opted out (keyword)",
    "opt_in": "opted in (keyword)",
    "help": "help text sent",
    "none": "passed to automations",
}


@dataclass(frozen=True)
class InboundView:
    """One inbound text and what it did (`outcome`, in words)."""

    id: int
    received_at: datetime
    contact_id: int | None
    from_number: str
    to_number: str | None
    body: str
    action: str  # as classified on arrival: opt_out, opt_in, help, review, none
    outcome: str
    awaiting_review: bool
    review_decision: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None


@dataclass(frozen=True)
class ReviewResult:
    """A closed review: the reply now, the opt-out recorded (if any), messages canceled."""

    reply: InboundView
    consent_event_id: int | None
    canceled: int


def _outcome(row: InboundMessage) -> str:
    if row.action == "review":
        if row.reviewed_at is None:
            return "awaiting review"
        if row.review_decision == "opt_out":
            return f"opted out by {row.reviewed_by} (review)"
        return f"not an opt-out, by {row.reviewed_by} (review)"
    if row.contact_id is None:
        return "no contact has this number: nothing done"
    return _DONE.get(row.action, row.action)


def view_of(row: InboundMessage) -> InboundView:
    return InboundView(
        id=row.id,
        received_at=row.received_at,
        contact_id=row.contact_id,
        from_number=row.from_number,
        to_number=row.to_number,
        body=row.body,
        action=row.action,
        outcome=_outcome(row),
        awaiting_review=row.action == "review" and row.reviewed_at is None,
        review_decision=row.review_decision,
        reviewed_by=row.reviewed_by,
        reviewed_at=row.reviewed_at,
    )


def list_inbound(
    sessions: sessionmaker[Session],
    account: str | None = None,
    *,
    review_only: bool = False,
    limit: int = 50,
) -> list[InboundView]:
    """The account's inbound texts, newest first; `review_only`: those awaiting review."""
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"--limit must be from 1 to {MAX_LIST}, not {limit}")
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        query = select(InboundMessage).where(InboundMessage.account_id == owner.id)
        if review_only:
            query = query.where(
                InboundMessage.action == "review", InboundMessage.reviewed_at.is_(None)
            )
        query = query.order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        return [view_of(row) for row in session.scalars(query.limit(limit))]


def review_reply(
    sessions: sessionmaker[Session],
    reply_id: int,
    *,
    opt_out: bool,
    by: str,
    account: str | None = None,
    now: datetime | None = None,
) -> ReviewResult:
    """Decide a reply flagged for review: an opt-out (a consent event, method agent, with
    the reply as evidence) or not one; either closes the review, recording who decided."""
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        done = review(
            session, owner.id, reply_id, opt_out=opt_out, by=by, now=now or datetime.now(UTC)
        )
        return ReviewResult(view_of(done.inbound), done.consent_event_id, done.canceled)
