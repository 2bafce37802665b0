"""Inbound texts (R12, R13): keywords act at once, everything else is stored.

A reply is matched to contacts by the sender's number (E.164). When the number we were
texted on (`to_number`) is an account's sender number, that account's contact is the
one; otherwise every account that knows the number gets the reply: a STOP must reach
each business the person may mean, and carriers apply STOP per sender number anyway.

What each reply does:
- opt-out keyword: an opt-out consent record (method keyword), every pending message to
  the contact canceled (credits released), then ONE confirmation reply and nothing after
  it. A second STOP is recorded but sends no second confirmation.
- opt-in keyword: an opt-in record and a short confirmation (once).
- help keyword: the account's help text, even to an opted-out contact (carriers require
  HELP to be answered).
- free-text revocation: stored for a human to review (`review`, `sendline inbox review`);
  no automatic change.
- anything else: handed to the automations listening for replies.

Delivery is at least once for webhooks, so a reply carrying a provider id is handled
once: a repeat returns the stored row and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from sendline.engine.auto_replies import queue_reply
from sendline.engine.triggers import on_reply
from sendline.errors import Conflict, InvalidInput, NotFound
from sendline.sms.optout import ReplyAction, classify_reply
from sendline.sms.phone import check_phone
from sendline.store import activity
from sendline.store.consent import MAX_RECORDER, MAX_SOURCE, Consent
from sendline.store.engine_models import InboundMessage, Message
from sendline.store.ids import is_id
from sendline.store.models import Account, Contact
from sendline.store.settlement import SHARE_COLUMNS, settle_shares

OPT_OUT_CONFIRMATION = (
    "You are unsubscribed from {name} and will receive no more messages. "
    "Reply START to resubscribe."
)
OPT_IN_CONFIRMATION = (
    "You are resubscribed to messages from {name}. Reply HELP for help, STOP to opt out."
)
SOURCE = "sms reply"
CANCELED = "canceled: the contact opted out (R12)"
MAX_REVIEWER = MAX_RECORDER  # inbound_messages.reviewed_by, consent_events.recorded_by


@dataclass(frozen=True)
class Handled:
    """What one inbound text did for one account."""

    inbound: InboundMessage
    account: Account | None
    contact: Contact | None
    reply: Message | None = None  # the confirmation or help text queued, if any
    canceled: int = 0  # pending messages canceled by an opt-out
    enrolled: int = 0  # automation runs the reply started
    duplicate: bool = False  # already handled (same provider id)

    @property
    def action(self) -> str:
        return self.inbound.action


@dataclass(frozen=True)
class Reviewed:
    """What a review did: the reply, the consent event it recorded, messages canceled."""

    inbound: InboundMessage
    consent_event_id: int | None
    canceled: int


def receive(
    session: Session,
    *,
    from_number: str,
    to_number: str | None,
    body: str,
    provider_id: str | None = None,
    now: datetime,
) -> InboundMessage:
    """Handle one inbound text; returns its stored row (the first, if several accounts)."""
    handled = receive_all(
        session,
        from_number=from_number,
        to_number=to_number,
        body=body,
        provider_id=provider_id,
        now=now,
    )
    return handled[0].inbound


def receive_all(
    session: Session,
    *,
    from_number: str,
    to_number: str | None,
    body: str,
    provider_id: str | None = None,
    now: datetime,
    owner_id: int | None = None,
    confirm_opt_out: bool = True,
) -> list[Handled]:
    """Handle one inbound text for every account it concerns; one `Handled` per account.

    `owner_id`: the account whose provider number was texted, when the carrier's webhook
    says (it is preferred like a `to_number` equal to an account's sender number).
    `confirm_opt_out` False: the carrier confirmed a STOP itself (R12: one confirmation)."""
    if provider_id is not None:
        seen = session.scalars(
            select(InboundMessage).where(InboundMessage.provider_id == provider_id)
        ).first()
        if seen is not None:
            return [Handled(seen, None, None, duplicate=True)]
    sender = check_phone(from_number).e164 or from_number.strip()
    to_e164 = (check_phone(to_number).e164 or to_number.strip()) if to_number else None
    action = classify_reply(body)
    pairs = _recipients(session, sender, to_e164, owner_id)
    if not pairs:
        owner = session.get(Account, owner_id) if owner_id is not None else None
        account = owner or _account_by_sender(session, to_e164)
        inbound = _store(session, account, None, from_number, to_number, body, action, provider_id)
        _received(session, inbound, now)
        return [Handled(inbound, account, None)]
    results: list[Handled] = []
    for index, (account, contact) in enumerate(pairs):
        # The provider id is unique: the first row carries it, the others a derived one.
        row_id = provider_id if index == 0 or provider_id is None else f"{provider_id}#{account.id}"
        inbound = _store(session, account, contact, from_number, to_number, body, action, row_id)
        _received(session, inbound, now)
        results.append(_act(session, inbound, account, contact, now, confirm_opt_out))
    return results


def _recipients(
    session: Session, sender: str, to_e164: str | None, owner_id: int | None = None
) -> list[tuple[Account, Contact]]:
    # Filtering on every account id lets both databases use the (account_id,
    # phone_e164) index instead of scanning all contacts.
    account_ids = list(session.scalars(select(Account.id)))
    rows = session.execute(
        select(Account, Contact)
        .join(Contact, Contact.account_id == Account.id)
        .where(Contact.account_id.in_(account_ids), Contact.phone_e164 == sender)
        .order_by(Account.id)
    ).all()
    pairs = [(row[0], row[1]) for row in rows]
    preferred = [
        pair
        for pair in pairs
        if pair[0].id == owner_id or (to_e164 and pair[0].sender_number == to_e164)
    ]
    return preferred or pairs


def _account_by_sender(session: Session, to_e164: str | None) -> Account | None:
    if to_e164 is None:
        return None
    return session.scalars(
        select(Account).where(Account.sender_number == to_e164).order_by(Account.id)
    ).first()


def _store(
    session: Session,
    account: Account | None,
    contact: Contact | None,
    from_number: str,
    to_number: str | None,
    body: str,
    action: ReplyAction,
    provider_id: str | None,
) -> InboundMessage:
    inbound = InboundMessage(
        account_id=account.id if account is not None else None,
        contact_id=contact.id if contact is not None else None,
        from_number=from_number.strip()[:64],
        to_number=to_number.strip()[:64] if to_number else None,
        body=body,
        action=action.value,
        provider_id=provider_id,
    )
    session.add(inbound)
    session.flush()
    return inbound


def _received(session: Session, inbound: InboundMessage, now: datetime) -> None:
    """The account's activity log (a text from a number no account knows has none)."""
    if inbound.account_id is not None:
        activity.inbound_received(
            session,
            inbound.account_id,
            inbound.contact_id,
            inbound.id,
            inbound.body,
            inbound.action,
            now,
        )


def _act(
    session: Session,
    inbound: InboundMessage,
    account: Account,
    contact: Contact,
    now: datetime,
    confirm_opt_out: bool = True,
) -> Handled:
    action = ReplyAction(inbound.action)
    if action is ReplyAction.OPT_OUT:
        return _opt_out(session, inbound, account, contact, now, confirm_opt_out)
    if action is ReplyAction.OPT_IN:
        return _opt_in(session, inbound, account, contact, now)
    if action is ReplyAction.HELP:
        reply = _reply(session, account, contact, account.help_text, now)
        return Handled(inbound, account, contact, reply=reply)
    if action is ReplyAction.NONE:
        enrolled = on_reply(session, account.id, contact.id, inbound.body, now=now)
        return Handled(inbound, account, contact, enrolled=enrolled)
    return Handled(inbound, account, contact)  # REVIEW: a person decides


def _opt_out(
    session: Session,
    inbound: InboundMessage,
    account: Account,
    contact: Contact,
    now: datetime,
    confirm: bool = True,
) -> Handled:
    already = contact.sms_consent == "opted_out"
    Consent(session, account.id).record(
        contact.id, "opt_out", "keyword", source=_source(inbound), occurred_at=now
    )
    canceled = cancel_pending(session, account.id, contact.id, now)
    # R12: one confirmation and nothing after it, so none for a repeated STOP either,
    # and none of ours when the carrier sent its own (`confirm` False).
    reply = None
    if confirm and not already:
        text = OPT_OUT_CONFIRMATION.format(name=account.name)
        reply = _reply(session, account, contact, text, now)
    return Handled(inbound, account, contact, reply=reply, canceled=canceled)


def _opt_in(
    session: Session, inbound: InboundMessage, account: Account, contact: Contact, now: datetime
) -> Handled:
    if contact.sms_consent == "opted_in":
        return Handled(inbound, account, contact)  # nothing changes: no second confirmation
    text = OPT_IN_CONFIRMATION.format(name=account.name)
    # The disclosure of a keyword opt-in is the confirmation that tells them what they
    # joined and how to leave: the message they get in answer to their keyword.
    Consent(session, account.id).record(
        contact.id, "opt_in", "keyword", source=_source(inbound), disclosure=text, occurred_at=now
    )
    return Handled(inbound, account, contact, reply=_reply(session, account, contact, text, now))


def _reply(
    session: Session, account: Account, contact: Contact, text: str, now: datetime
) -> Message | None:
    if contact.phone_e164 is None:
        return None
    return queue_reply(session, account, contact, contact.phone_e164, text, now=now)


def cancel_pending(session: Session, account_id: int, contact_id: int, now: datetime) -> int:
    """Cancel every message to the contact not yet handed to the provider, releasing its
    credits. Claimed ones (`sending`) are caught by the dispatcher's own check (R13).

    An opt-out confirmation still waiting for a worker is spared: it is owed (R12), and
    a second STOP sent before it went out must not cancel the only one."""
    account = session.get(Account, account_id)  # in the session already: no query
    assert account is not None
    confirmation = OPT_OUT_CONFIRMATION.format(name=account.name)
    rows = session.execute(
        update(Message)
        .where(
            Message.account_id == account_id,
            Message.contact_id == contact_id,
            Message.status.in_(("queued", "held")),
            or_(Message.kind != "reply", Message.body != confirmation),
        )
        .values(status="canceled", detail=CANCELED, updated_at=now)
        .returning(*SHARE_COLUMNS)
        .execution_options(synchronize_session="fetch")
    ).all()
    settle_shares(session, rows, "release")
    keys = [(row[0], account_id, contact_id) for row in rows]
    activity.message_statuses(session, keys, "canceled", now, detail=CANCELED)
    return len(rows)


def review(
    session: Session,
    account_id: int,
    inbound_id: int,
    *,
    opt_out: bool,
    by: str,
    now: datetime,
) -> Reviewed:
    """A person's decision on a reply flagged for review (R12's free-text revocations).

    An opt-out is recorded as a consent event (method `agent`, the reply's text as the
    evidence) and cancels what is pending, like a STOP. No confirmation is sent: the
    FCC's 2024 rule allows one only within minutes of the request, and a review usually
    comes later. Not an opt-out just closes the review. Either way who decided is kept.
    """
    reviewer = _reviewer(by)
    inbound = _reviewable(session, account_id, inbound_id)
    event_id, canceled = None, 0
    if opt_out:
        if inbound.contact_id is None:
            raise InvalidInput(
                f"reply {inbound_id} came from a number no contact has: there is nobody to "
                "opt out (close the review with --not-opt-out)"
            )
        event = Consent(session, account_id).record(
            inbound.contact_id,
            "opt_out",
            "agent",
            source=f"inbox review of reply {inbound_id}",
            disclosure=inbound.body,
            occurred_at=now,
            recorded_by=reviewer,  # who decided: the proof names a person
        )
        event_id = event.id
        canceled = cancel_pending(session, account_id, inbound.contact_id, now)
    inbound.review_decision = "opt_out" if opt_out else "not_opt_out"
    inbound.reviewed_by, inbound.reviewed_at = reviewer, now
    session.flush()
    return Reviewed(inbound, event_id, canceled)


def _reviewer(by: str) -> str:
    name = by.strip()
    if not name or len(name) > MAX_REVIEWER or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"the reviewer's name must be 1-{MAX_REVIEWER} printable characters")
    return name


def _reviewable(session: Session, account_id: int, inbound_id: int) -> InboundMessage:
    # Locked: two people reviewing the same reply at once must not both decide.
    query = (
        select(InboundMessage)
        .where(InboundMessage.id == inbound_id, InboundMessage.account_id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    inbound = session.scalars(query).first() if is_id(inbound_id) else None
    if inbound is None:
        raise NotFound(f"no reply {inbound_id} in this account")
    if inbound.reviewed_at is not None:
        raise Conflict(
            f"reply {inbound_id} was already reviewed by {inbound.reviewed_by or 'someone'} "
            f"({inbound.review_decision or 'closed'}, {inbound.reviewed_at:%Y-%m-%d %H:%M} UTC)",
            code="already_reviewed",
        )
    if inbound.action != ReplyAction.REVIEW.value:
        raise InvalidInput(
            f"reply {inbound_id} was not flagged for review: it was handled as "
            f"{inbound.action} when it arrived",
            code="not_for_review",
        )
    return inbound


def _source(inbound: InboundMessage) -> str:
    where = f" to {inbound.to_number}" if inbound.to_number else ""
    return f"{SOURCE} {inbound.body.strip()[:60]!r} from {inbound.from_number}{where}"[:MAX_SOURCE]
