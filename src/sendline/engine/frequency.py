"""The frequency cap (R15): how many marketing messages a contact got in the last 24 hours."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendline.store.engine_models import Message
from sendline.store.sets import among

# Statuses that count toward the frequency cap: everything that was or will be sent.
CAPPED_STATUSES = ("queued", "sending", "unknown", "sent", "delivered", "undelivered")
CAP_WINDOW = timedelta(hours=24)


def recent_counts(session: Session, contact_ids: list[int], now: datetime) -> dict[int, int]:
    """R15: marketing messages per contact in the rolling 24 hours before `now`, in one
    query for any number of contacts (a contact with none is absent)."""
    if not contact_ids:
        return {}
    rows = session.execute(
        select(Message.contact_id, func.count())
        .where(
            among(session, Message.contact_id, set(contact_ids)),
            Message.kind == "marketing",
            Message.status.in_(CAPPED_STATUSES),
            Message.created_at > now - CAP_WINDOW,
        )
        .group_by(Message.contact_id)
    )
    return {int(cid): int(count) for cid, count in rows if cid is not None}
