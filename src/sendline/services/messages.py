"""Messages, as a user works on them: list what was sent, what is held and why, what
waits and until when; release held messages once their cause is fixed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.held import MAX_RELEASE, Released, recent_messages, release, wait_reason
from sendline.services import AccountRef, resolve_account
from sendline.sms.links import ShortenerList
from sendline.store.batch_filter import among
from sendline.store.models import Contact

__all__ = ["MAX_RELEASE", "MessageLine", "Released", "list_messages", "release_held"]


@dataclass(frozen=True)
class MessageLine:
    """One message as `messages list` shows it."""

    id: int
    created_at: datetime
    to: str | None
    kind: str
    transactional: bool
    status: str
    held_reason: str | None
    detail: str | None
    waiting: str | None  # why a queued one has not gone yet (see `wait_reason`)
    body: str | None
    segments: int
    credits: int
    due_at: datetime | None


def list_messages(
    sessions: sessionmaker[Session],
    account: AccountRef = None,
    *,
    status: str | None = None,
    reason: str | None = None,
    limit: int = 20,
    now: datetime | None = None,
) -> list[MessageLine]:
    """The account's messages, newest first, each held one with its reason and each
    queued one with why it waits."""
    now = now or datetime.now(UTC)
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        found = recent_messages(session, owner.id, status=status, reason=reason, limit=limit)
        zones = _zones(session, {m.contact_id for m in found if m.contact_id is not None})
        return [
            MessageLine(
                id=m.id,
                created_at=m.created_at,
                to=m.to_e164,
                kind=m.kind,
                transactional=m.transactional,
                status=m.status,
                held_reason=m.held_reason,
                detail=m.detail,
                waiting=wait_reason(
                    m.status,
                    m.due_at,
                    m.detail,
                    m.error_code,
                    zones.get(m.contact_id) if m.contact_id is not None else None,
                    now,
                ),
                body=m.body,
                segments=m.segments,
                credits=m.credits,
                due_at=m.due_at,
            )
            for m in found
        ]


def release_held(
    sessions: sessionmaker[Session],
    account: AccountRef = None,
    *,
    ids: Sequence[int] = (),
    reason: str | None = None,
    now: datetime | None = None,
    shorteners: ShortenerList | None = None,
) -> list[Released]:
    """Run the send checks again for held messages (by id, or every one held for
    `reason`): all or nothing, in one transaction."""
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        return release(
            session,
            owner,
            ids=ids,
            reason=reason,
            now=now or datetime.now(UTC),
            shorteners=shorteners,
        )


def _zones(session: Session, contact_ids: set[int]) -> dict[int, str | None]:
    if not contact_ids:
        return {}
    rows = session.execute(
        select(Contact.id, Contact.time_zone).where(among(session, Contact.id, contact_ids))
    )
    return {int(cid): zone for cid, zone in rows}
