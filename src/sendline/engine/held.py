"""Held messages, seen and released by people: nothing held is lost or stuck.

A message that failed a check of the send pipeline is stored `held` with its reason
(no credits, no consent, a public shortener...). Once the cause is fixed (credits
bought, the contact opted in, the number corrected), releasing it runs every check
again, in the same order, as of now (`Pipeline.check_batch`, the blast's own), rendered
from what the message was created with (its template and event payload): it is queued
if they all pass, and otherwise stays held with the reason it fails on today. A queued
message says why it waits (`wait_reason`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from sendline.engine.auto_replies import settle_reply
from sendline.engine.dispatcher import PACED
from sendline.engine.pipeline import HOLD_REASONS, Pipeline, SmsRequest
from sendline.engine.recipients import ContactFacts, load_facts
from sendline.engine.zones import local_zone
from sendline.errors import InvalidInput, NotFound
from sendline.sms.links import ShortenerList
from sendline.store import activity
from sendline.store.batch_filter import among
from sendline.store.batch_writes import update_rows
from sendline.store.credits import Credits
from sendline.store.engine_models import MESSAGE_STATUSES, Message
from sendline.store.ids import is_id
from sendline.store.models import Account

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


def wait_reason(
    status: str,
    due_at: datetime | None,
    detail: str | None,
    error_code: str | None,
    time_zone: str | None,
    now: datetime,
) -> str | None:
    """Why a queued message has not gone yet, from its row alone (None unless queued):
    due now, the sender's rate limit, a retry's backoff, or quiet hours (R14) until a
    time given in the contact's own zone, where the user's question comes from."""
    if status != "queued":
        return None
    if due_at is None or due_at <= now:
        return "due now"
    if detail == PACED:
        return f"rate limit: due {due_at.astimezone(UTC):%H:%M:%S} UTC"
    if error_code is not None:
        return f"retry after {error_code}: due {due_at.astimezone(UTC):%H:%M:%S} UTC"
    zone = local_zone(time_zone)
    local = due_at.astimezone(zone)
    days = (local.date() - now.astimezone(zone).date()).days
    day = {0: "", 1: " tomorrow"}.get(days, f" on {local:%a %d %b}")
    return f"quiet hours until {local:%H:%M}{day} ({zone.key})"


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
    """The pipeline's checks (`check_batch`, as a blast queues its messages) for many
    held messages at once: the contacts read in one query, the rows written in one
    statement (a release is often thousands: everything held for want of credits, once
    credits are bought). Each renders from what it was created with: its template and
    its event's payload. A held message holds no reservation: each gets its first."""
    pairs = _with_contacts(session, messages)
    items = [(contact, _request(message)) for message, contact in pairs]
    reserve = Credits(session, pipeline.account.id).reserve_many
    checked = pipeline.check_batch(session, items, [m.id for m in messages], now, reserve)
    rows = [
        {"id": message.id, "to_e164": contact.phone_e164, "region": contact.phone_region}
        | outcome.columns()
        | {"updated_at": now}
        for (message, contact), outcome in zip(pairs, checked, strict=True)
    ]
    was = {message.id: message.held_reason for message in messages}
    _write(session, messages, rows)
    facts = [
        (m.id, m.account_id, m.contact_id, m.status, m.held_reason, m.detail) for m in messages
    ]
    activity.settled(session, facts, now, was=was)


def _request(message: Message) -> SmsRequest:
    return SmsRequest(
        template=message.template or "",
        event=message.event,
        transactional=message.transactional,
    )


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
