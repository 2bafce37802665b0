"""Held messages, seen and released by people: nothing held is lost or stuck.

A message that failed a check of the send pipeline is stored `held` with its reason
(no credits, no consent, a public shortener...). Once the cause is fixed (credits
bought, the contact opted in, the number corrected), releasing it runs every check
again, in the same order, as of now: it is queued if they all pass, and otherwise
stays held with the reason it fails on today.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from sendline.engine.facts import ContactFacts, load_facts
from sendline.engine.frequency import recent_counts
from sendline.engine.pipeline import HOLD_REASONS, NO_CREDITS, Draft, Hold, Pipeline
from sendline.engine.replies import settle_reply
from sendline.engine.zones import Zones
from sendline.errors import InvalidInput, NotFound
from sendline.sms.links import ShortenerList
from sendline.store.credit_values import Share
from sendline.store.credits import Credits
from sendline.store.engine_models import MESSAGE_STATUSES, Message
from sendline.store.ids import is_id
from sendline.store.models import Account
from sendline.store.rows import update_rows
from sendline.store.sets import among

MAX_RELEASE = 10_000  # one transaction: a release is all or nothing
_MESSAGES = cast(Table, Message.__table__)


@dataclass(frozen=True)
class Released:
    message_id: int
    status: str  # queued, or held again
    reason: str | None
    detail: str | None
    due_at: datetime | None


def recent_messages(
    session: Session,
    account_id: int,
    *,
    status: str | None = None,
    reason: str | None = None,
    limit: int = 20,
) -> list[Message]:
    """The account's messages, newest first, optionally by status and hold reason."""
    query = select(Message).where(Message.account_id == account_id)
    if status is not None:
        query = query.where(Message.status == _known(status, MESSAGE_STATUSES, "status"))
    if reason is not None:
        query = query.where(Message.held_reason == _known(reason, HOLD_REASONS, "reason"))
    return list(session.scalars(query.order_by(Message.id.desc()).limit(limit)))


def release(
    session: Session,
    account: Account,
    *,
    ids: Sequence[int] = (),
    reason: str | None = None,
    now: datetime,
    shorteners: ShortenerList | None = None,
) -> list[Released]:
    """Run the checks again for held messages, named by id or by their hold reason.

    All or nothing: an id that is not a held message of this account raises NotFound
    and the caller's transaction is rolled back."""
    if bool(ids) == (reason is not None):
        raise InvalidInput("name the held messages by id or by --reason, not both or neither")
    if reason is not None:
        _known(reason, HOLD_REASONS, "reason")
        # The oldest MAX_RELEASE of them: a release is one transaction, and running it
        # again takes the next ones.
        ids = list(
            session.scalars(
                select(Message.id)
                .where(
                    Message.account_id == account.id,
                    Message.status == "held",
                    Message.held_reason == reason,
                )
                .order_by(Message.id)
                .limit(MAX_RELEASE)
            )
        )
    if len(ids) > MAX_RELEASE:
        raise InvalidInput(f"at most {MAX_RELEASE:,} messages in one release")
    messages = _held_messages(session, account.id, ids)
    # Replies first: an opt-out confirmation is owed to the contact (R12), so it takes
    # its credits before marketing does.
    for message in messages:
        if message.kind == "reply":
            settle_reply(session, account, message, now)
    marketing = [message for message in messages if message.kind != "reply"]
    if marketing:
        _release_marketing(session, Pipeline(account, shorteners), marketing, now)
    return [
        Released(m.id, m.status, m.held_reason, m.detail, m.due_at)
        for m in messages  # in the order asked
    ]


def _held_messages(session: Session, account_id: int, ids: Sequence[int]) -> list[Message]:
    """The messages `ids` (each once, in that order), each checked to be this account's
    and held; read in one query, then checked from the session."""
    unique = list(dict.fromkeys(ids))
    # Kept in a variable: the session holds its objects weakly, and `held_message`'s
    # lookups must find them there rather than query again one by one.
    wanted = [message_id for message_id in unique if is_id(message_id)]  # others: NotFound
    _loaded = session.scalars(select(Message).where(among(session, Message.id, wanted))).all()
    return [held_message(session, account_id, message_id) for message_id in unique]


def held_message(session: Session, account_id: int, message_id: int) -> Message:
    """The account's held message `message_id`, or NotFound saying why not."""
    message = session.get(Message, message_id) if is_id(message_id) else None
    if message is None or message.account_id != account_id:
        raise NotFound(f"no message {message_id} in this account")
    if message.status != "held":
        raise NotFound(f"message {message_id} is {message.status}, not held")
    return message


def _release_marketing(
    session: Session, pipeline: Pipeline, messages: Sequence[Message], now: datetime
) -> None:
    """The pipeline's checks for many held messages at once, as a blast queues its
    messages: the contacts read in one query, the frequency counts in one, the credits
    reserved in one batch, the rows written in one statement (a release is often
    thousands: everything held for want of credits, once credits are bought)."""
    pairs = _with_contacts(session, messages)
    outcomes = [pipeline.draft(contact, message.template or "") for message, contact in pairs]
    drafted = [c.id for (_, c), o in zip(pairs, outcomes, strict=True) if isinstance(o, Draft)]
    counts = recent_counts(session, drafted, now)  # held messages are not counted (R15)
    verdicts = [
        pipeline.capped(outcome, contact.id, counts)
        for (_, contact), outcome in zip(pairs, outcomes, strict=True)
    ]
    # R3, in order. A held message holds no reservation: each gets its first.
    wanted = [
        (message.id, verdict.credits)
        for (message, _), verdict in zip(pairs, verdicts, strict=True)
        if isinstance(verdict, Draft)
    ]
    credits = Credits(session, pipeline.account.id)
    reserved = iter(credits.reserve_many(wanted) if wanted else [])
    windows: dict[Zones, datetime] = {}
    rows = []
    for (message, contact), verdict in zip(pairs, verdicts, strict=True):
        share = next(reserved) if isinstance(verdict, Draft) else None
        due_at = pipeline.due_at(contact, now, windows) if share is not None else None
        rows.append(_row(message, contact, verdict, share, due_at) | {"updated_at": now})
    _write(session, messages, rows)


def _row(
    message: Message,
    contact: ContactFacts,
    verdict: Draft | Hold,
    share: Share | None,
    due_at: datetime | None,
) -> dict[str, Any]:
    """A released message's new columns (every row the same keys: one statement)."""
    row: dict[str, Any] = {
        "id": message.id,
        "to_e164": contact.phone_e164,
        "region": contact.phone_region,
        "body": message.body,
        "encoding": message.encoding,
        "segments": message.segments,
        "credits": message.credits,
        "reservation_id": share.reservation_id if share else None,
        "credits_free": share.free if share else 0,
    }
    if isinstance(verdict, Draft):
        row |= {"body": verdict.body, "encoding": verdict.encoding}
        row |= {"segments": verdict.segments, "credits": verdict.credits}
        if share is None:
            verdict = NO_CREDITS
    if isinstance(verdict, Hold):
        return row | {
            "status": "held",
            "held_reason": verdict.reason,
            "detail": verdict.detail,
            "due_at": None,
        }
    return row | {"status": "queued", "held_reason": None, "detail": None, "due_at": due_at}


def _with_contacts(
    session: Session, messages: Sequence[Message]
) -> list[tuple[Message, ContactFacts]]:
    contacts = load_facts(session, {m.contact_id for m in messages if m.contact_id})
    pairs = []
    for message in messages:
        contact = contacts.get(message.contact_id) if message.contact_id else None
        if contact is None:
            raise NotFound(f"message {message.id} has no contact any more")
        pairs.append((message, contact))
    return pairs


def _write(session: Session, messages: Sequence[Message], rows: list[dict[str, Any]]) -> None:
    """One statement for all the rows (the ORM would send one UPDATE per message at
    flush); the objects then hold what was written, as if just loaded."""
    update_rows(session, _MESSAGES, rows)
    for message, row in zip(messages, rows, strict=True):
        for key, value in row.items():
            if key != "id":
                set_committed_value(message, key, value)


def _known(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise InvalidInput(f"unknown {what} {value!r}; one of: {', '.join(allowed)}")
    return value
