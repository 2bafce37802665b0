"""Automatic replies to keywords (STOP confirmations, HELP answers): transactional, paid
for, never marketing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from sendline.engine.pipeline import Hold, hold
from sendline.errors import InsufficientCredits
from sendline.sms.encoding import segment_info
from sendline.store import activity
from sendline.store.credits import Credits
from sendline.store.engine_models import Message
from sendline.store.models import Account, Contact


def queue_reply(
    session: Session,
    account: Account,
    contact: Contact | None,
    to_e164: str,
    body: str,
    *,
    now: datetime,
) -> Message:
    """Queue a transactional reply (opt-out confirmation, HELP answer).

    Not marketing: no consent, quiet-hours or frequency checks and no clause appended
    (a STOP confirmation must reach someone who just opted out, at once). Still paid for
    (R3): without credits it is held like any message, never dropped.
    """
    info = segment_info(body)
    region = contact.phone_region if contact is not None else None
    message = Message(
        account_id=account.id,
        contact_id=contact.id if contact is not None else None,
        kind="reply",
        to_e164=to_e164,
        region=region,
        body=body,
        encoding=info.encoding.value,
        segments=info.segments,
        credits=account.credit_cost(info.segments, region),
        status="held",
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    settle_reply(session, account, message, now)
    return message


def settle_reply(session: Session, account: Account, message: Message, now: datetime) -> None:
    """Check a reply (its plan, its credits): queued now, or held with the reason. Also
    how a held reply is released; consent is not checked, as the opt-out confirmation is
    owed to whoever opted out."""
    before = message.held_reason  # None for a new reply; its reason for a release
    _check_reply(session, account, message, now)
    was = {message.id: before} if before is not None else None
    facts = (message.account_id, message.contact_id, message.status, message.held_reason)
    activity.settled(session, [(message.id, *facts, message.detail)], now, was=was)


def _check_reply(session: Session, account: Account, message: Message, now: datetime) -> None:
    refusal = account.sms_refusal()
    if refusal is not None:
        hold(message, Hold(refusal.code, refusal.message), now)
        session.flush()
        return
    message.status, message.held_reason, message.detail = "queued", None, None
    session.flush()  # the message id is the reservation's reference
    try:
        reservation = Credits(session, account.id).reserve(message.credits, message_id=message.id)
    except InsufficientCredits as exc:
        hold(message, Hold("insufficient_credits", str(exc)), now)
        return
    message.reservation_id, message.credits_free = reservation.id, reservation.free
    message.due_at = now
    message.updated_at = now
