"""The inbox: texts contacts sent, what each did, and the review queue (R12).

Keyword replies (STOP, START, HELP) act at once; free-text revocations ("please stop
texting me") wait for a person, who sees them here and decides (`review`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, not_, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.inbound import Handled, receive_all, review
from sendline.errors import InvalidInput, NotFound
from sendline.services import AccountRef, resolve_account
from sendline.sms.phone import check_phone
from sendline.store.accounts import Accounts
from sendline.store.engine_models import InboundMessage
from sendline.store.ids import is_id
from sendline.store.keyset import newest_first

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
    account: AccountRef = None,
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


def page_inbound(
    sessions: sessionmaker[Session],
    account: AccountRef,
    *,
    limit: int,
    review: bool | None = None,
    contact_id: int | None = None,
    before_id: int | None = None,
) -> list[InboundView]:
    """Up to `limit` of the account's inbound texts, newest first by id, from below
    `before_id` (a keyset page). `review` True: only those awaiting review; False:
    only those not awaiting it."""
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        query = select(InboundMessage).where(InboundMessage.account_id == owner.id)
        if contact_id is not None:
            query = query.where(InboundMessage.contact_id == contact_id)
        if review is not None:
            awaiting = and_(InboundMessage.action == "review", InboundMessage.reviewed_at.is_(None))
            query = query.where(awaiting if review else not_(awaiting))
        query = newest_first(query, InboundMessage.id, before_id, limit)
        return [view_of(row) for row in session.scalars(query)]


def get_inbound(
    sessions: sessionmaker[Session], account: AccountRef, inbound_id: int
) -> InboundView:
    """One of the account's inbound texts; another account's is NotFound."""
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        row = session.get(InboundMessage, inbound_id) if is_id(inbound_id) else None
        if row is None or row.account_id != owner.id:
            raise NotFound(f"no inbound text {inbound_id} in this account")
        return view_of(row)


def review_reply(
    sessions: sessionmaker[Session],
    reply_id: int,
    *,
    opt_out: bool,
    by: str,
    account: AccountRef = None,
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


@dataclass(frozen=True)
class Received:
    """What one inbound text did for one account, as the shells report it."""

    action: str  # opt_out, opt_in, help, review, none
    account_name: str | None
    has_contact: bool
    replied: bool  # a confirmation or help text was queued
    canceled: int  # pending messages an opt-out canceled
    enrolled: int  # automation runs the reply started
    duplicate: bool  # the same provider id was handled before: nothing done


def receive_text(
    sessions: sessionmaker[Session],
    *,
    from_number: str,
    body: str,
    account_ref: AccountRef = None,
    to_number: str | None = None,
    provider_id: str | None = None,
    account_id: int | None = None,
    confirm_opt_out: bool = True,
) -> list[Received]:
    """An inbound text (R12), from a carrier's webhook or the sandbox phone: stored, and
    an opt-out committed before this returns. `account_ref` names the account whose
    number was texted when the carrier does not say (`to_number`); `account_id` the
    account whose provider number was texted (a webhook knows it). `confirm_opt_out`
    False: the carrier already confirmed a STOP, so Sendline sends no second one."""
    if not check_phone(from_number).ok:
        raise InvalidInput(f"{from_number!r} is not a valid phone number (use +country code)")
    with sessions.begin() as session:
        if to_number is None and account_ref is not None:
            to_number = resolve_account(session, account_ref).sender_number
        elif to_number is None:
            every = Accounts(session).list()
            to_number = every[0].sender_number if len(every) == 1 else None
        handled = receive_all(
            session,
            from_number=from_number,
            to_number=to_number,
            body=body,
            provider_id=provider_id,
            now=datetime.now(UTC),
            owner_id=account_id,
            confirm_opt_out=confirm_opt_out,
        )
        return [_received(item) for item in handled]


def _received(item: Handled) -> Received:
    return Received(
        action=item.action,
        account_name=item.account.name if item.account is not None else None,
        has_contact=item.contact is not None,
        replied=item.reply is not None,
        canceled=item.canceled,
        enrolled=item.enrolled,
        duplicate=item.duplicate,
    )
