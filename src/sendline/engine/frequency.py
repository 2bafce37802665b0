"""What a contact recently got: marketing messages in the last 24 hours (the frequency
cap, R15) and the opt-out clause in the last 30 days (the account's clause policy, R11)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendline.store.batch_filter import among
from sendline.store.engine_models import Message

# Statuses that count toward the frequency cap: everything that was or will be sent.
CAPPED_STATUSES = ("queued", "sending", "unknown", "sent", "delivered", "undelivered")
CAP_WINDOW = timedelta(hours=24)
CLAUSE_WINDOW = timedelta(days=30)


def recent_counts(session: Session, contact_ids: list[int], now: datetime) -> dict[int, int]:
    """R15: marketing messages per contact in the rolling 24 hours before `now`, in one
    query for any number of contacts (a contact with none is absent). Transactional
    messages (order, shipping) are not counted: the cap is for marketing."""
    if not contact_ids:
        return {}
    rows = session.execute(
        select(Message.contact_id, func.count())
        .where(
            among(session, Message.contact_id, set(contact_ids)),
            Message.kind == "marketing",
            Message.transactional.is_(False),
            Message.status.in_(CAPPED_STATUSES),
            Message.created_at > now - CAP_WINDOW,
        )
        .group_by(Message.contact_id)
    )
    return {int(cid): int(count) for cid, count in rows if cid is not None}


def recent_clauses(session: Session, contact_ids: list[int], now: datetime) -> set[int]:
    """R11 under the "every 30 days" policy: the contacts among `contact_ids` that got
    (or are about to get) a message carrying the opt-out clause in the 30 days before
    `now`, in one query."""
    if not contact_ids:
        return set()
    rows = session.scalars(
        select(Message.contact_id)
        .where(
            among(session, Message.contact_id, set(contact_ids)),
            Message.clause_included.is_(True),
            Message.status.in_(CAPPED_STATUSES),
            Message.created_at > now - CLAUSE_WINDOW,
        )
        .distinct()
    )
    return {int(cid) for cid in rows if cid is not None}
