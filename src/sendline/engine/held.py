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

from sqlalchemy import Row, Table, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from sendline.engine.auto_replies import settle_reply
from sendline.engine.dispatcher import PACED
from sendline.engine.pipeline import HOLD_REASONS, Pipeline, SmsRequest
from sendline.engine.recipients import ContactFacts, load_facts
from sendline.engine.statuses import settlement
from sendline.engine.zones import local_zone
from sendline.errors import Conflict, InvalidInput, NotFound
from sendline.sms.links import ShortenerList
from sendline.store import activity
from sendline.store.batch_filter import among
from sendline.store.batch_writes import update_rows
from sendline.store.credits import Credits
from sendline.store.engine_models import MESSAGE_STATUSES, Message
from sendline.store.ids import is_id
from sendline.store.keyset import newest_first
from sendline.store.models import Account, Contact
from sendline.store.settlement import SHARE_COLUMNS, settle_shares

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


# -- the API's list and cancel (issue 14) -----------------------------------------------


@dataclass(frozen=True)
class MessageFilter:
    """What `GET /api/v1/messages` may filter on (each optional), and the page's start:
    only ids below `before_id`."""

    status: str | None = None
    reason: str | None = None
    automation_id: int | None = None
    contact_id: int | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    before_id: int | None = None


# What a listing shows of a message (not its template, event payload or claim): read as
# plain rows, which costs a fraction of loading whole ORM objects.
LISTED = (
    Message.id,
    Message.created_at,
    Message.to_e164,
    Message.kind,
    Message.transactional,
    Message.status,
    Message.held_reason,
    Message.detail,
    Message.body,
    Message.segments,
    Message.credits,
    Message.due_at,
    Message.contact_id,
    Message.automation_id,
    Message.step_id,
    Message.provider,
    Message.error_code,
    Message.sent_at,
    Message.delivered_at,
)

# A row of LISTED and the contact's time zone.
Listed = Row[*tuple[Any, ...]]


def find_messages(
    session: Session, account_id: int, where: MessageFilter, limit: int
) -> Sequence[Listed]:
    """One page of the account's messages (LISTED, and the contact's `time_zone` for
    `wait_reason`), newest first: a keyset scan, `id < before_id` ORDER BY id DESC on
    the index (account_id, id), so a page costs the same however deep. A contact's
    messages come from its own index; the other filters ride along the scan. One
    query: the zones are joined (a primary-key probe per row shown), not fetched after."""
    query = (
        select(*LISTED, Contact.time_zone)
        .outerjoin(Contact, Contact.id == Message.contact_id)
        .where(Message.account_id == account_id)
    )
    if where.status is not None:
        query = query.where(Message.status == _named(where.status, MESSAGE_STATUSES, "status"))
    if where.reason is not None:
        query = query.where(Message.held_reason == _named(where.reason, HOLD_REASONS, "reason"))
    if where.automation_id is not None:
        query = query.where(Message.automation_id == where.automation_id)
    if where.contact_id is not None:
        query = query.where(Message.contact_id == where.contact_id)
    if where.created_after is not None:
        query = query.where(Message.created_at >= where.created_after)
    if where.created_before is not None:
        query = query.where(Message.created_at < where.created_before)
    return session.execute(newest_first(query, Message.id, where.before_id, limit)).all()


def _named(value: str, allowed: Sequence[str], field: str) -> str:
    """`_known`, the error naming the input field."""
    try:
        return _known(value, allowed, field)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=field) from None


CANCELABLE = ("queued", "held")  # not yet claimed by a worker
CANCELED_DETAIL = "canceled by the user"


def cancel_message(session: Session, account_id: int, message_id: int, now: datetime) -> Message:
    """Cancel one of the account's messages that no worker has claimed (queued or held),
    releasing what it reserved through the ledger's owner.

    Each attempt is one conditional UPDATE (`WHERE status = ...`): a worker's claim is
    another, so exactly one of the two wins the row; the loser finds the status changed
    (a cancel that loses is a Conflict, a claim that loses skips the row). Another
    account's message is NotFound, as one that does not exist."""
    for status in CANCELABLE:
        shares = session.execute(
            update(Message)
            .where(
                Message.id == message_id,
                Message.account_id == account_id,
                Message.status == status,
            )
            .values(status="canceled", detail=CANCELED_DETAIL, updated_at=now)
            .returning(*SHARE_COLUMNS)
            .execution_options(synchronize_session=False)
        ).all()
        if shares:
            kind = settlement(status, "canceled")  # a held message holds no credits
            if kind is not None:
                settle_shares(session, shares, kind)
            found = session.get(Message, message_id, populate_existing=True)
            assert found is not None
            key = (found.id, found.account_id, found.contact_id)
            activity.message_statuses(session, [key], "canceled", now, detail=CANCELED_DETAIL)
            return found
    message = session.get(Message, message_id) if is_id(message_id) else None
    if message is None or message.account_id != account_id:
        raise NotFound(f"no message {message_id} in this account")
    raise Conflict(
        f"message {message_id} is {message.status}: only a queued or held message can be canceled",
        code="message_not_cancelable",
    )
