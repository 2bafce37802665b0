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

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendline.engine.pipeline import HOLD_REASONS, Pipeline, held_message
from sendline.engine.replies import settle_reply
from sendline.errors import InvalidInput
from sendline.sms.links import ShortenerList
from sendline.store.engine_models import MESSAGE_STATUSES, Message
from sendline.store.models import Account

MAX_RELEASE = 10_000  # one transaction: a release is all or nothing


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
    pipeline = Pipeline(account, shorteners)
    results = []
    for message_id in ids:
        message = held_message(session, account.id, message_id)
        if message.kind == "reply":
            settle_reply(session, account, message, now)
        else:
            pipeline.release_message(session, message, now)
        results.append(
            Released(
                message.id, message.status, message.held_reason, message.detail, message.due_at
            )
        )
    return results


def _known(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise InvalidInput(f"unknown {what} {value!r}; one of: {', '.join(allowed)}")
    return value
