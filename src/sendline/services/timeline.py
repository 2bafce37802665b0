"""What the dashboard's message pages summarise: the account's held messages counted by
hold reason (the held view groups them, each with its fix and a release action).

A contact's message timeline needs nothing new: `services.messages.message_page` with
`MessageFilter(contact_id=...)` reads it from the contact's own index.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.services import AccountRef, resolve_account
from sendline.store.engine_models import Message


@dataclass(frozen=True)
class HeldGroup:
    reason: str  # a hold reason (engine.pipeline.HOLD_REASONS)
    count: int
    oldest_id: int


def held_groups(sessions: sessionmaker[Session], account: AccountRef) -> list[HeldGroup]:
    """The account's held messages by hold reason, the largest group first. One
    grouped query on the (account_id, status) index, however many are held."""
    with sessions.begin() as session:
        account_id = resolve_account(session, account).id
        rows = session.execute(
            select(Message.held_reason, func.count(), func.min(Message.id))
            .where(Message.account_id == account_id, Message.status == "held")
            .group_by(Message.held_reason)
        ).all()
    groups = [
        HeldGroup(reason or "held", int(count), int(oldest)) for reason, count, oldest in rows
    ]
    return sorted(groups, key=lambda group: (-group.count, group.reason))


__all__ = ["HeldGroup", "held_groups"]
