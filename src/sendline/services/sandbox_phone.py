"""The sandbox phone: what the sandbox carrier delivered to an account's contacts, and
their replies, as each contact's phone would show them (the dashboard's view of
`sendline sandbox outbox` and `sendline sandbox reply`).

The carrier's records (`sandbox_messages`) know no account: a record is the account's
when the message it stands for (`message_ref`) is. A reply goes through
`inbox.receive_text`, exactly as `sendline sandbox reply` sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import InvalidInput, NotFound
from sendline.providers.sandbox import ERRORS
from sendline.providers.sandbox_store import SandboxMessage
from sendline.services.inbox import Received, receive_text
from sendline.sms.phone import check_phone
from sendline.store.engine_models import InboundMessage, Message
from sendline.store.ids import parse_id
from sendline.store.models import Contact

MAX_PHONES = 200
MAX_BUBBLES = 200
MAX_REPLY = 1600  # ten segments of plain text: what a phone would let one send


@dataclass(frozen=True)
class Phone:
    """A contact's phone, as the sandbox phone lists it."""

    contact_id: int
    name: str
    number: str
    sms_consent: str
    received: int  # texts the sandbox carrier accepted for it


@dataclass(frozen=True)
class Bubble:
    """One text on the phone: `mine` when the phone sent it (a reply), else received."""

    key: str  # unique on the page: "in-3", "out-7"
    at: datetime
    body: str
    mine: bool
    note: str  # "" when delivered; else why the phone never got it


@dataclass(frozen=True)
class Conversation:
    phone: Phone
    bubbles: list[Bubble]


def list_phones(sessions: sessionmaker[Session], account_id: int) -> list[Phone]:
    """The account's contacts with a textable number, those texted most recently first."""
    with sessions.begin() as session:
        counts = dict(
            session.execute(
                select(SandboxMessage.to, func.count())
                .join(Message, Message.id == SandboxMessage.message_ref)
                .where(Message.account_id == account_id)
                .group_by(SandboxMessage.to)
            ).all()
        )
        rows = session.scalars(
            select(Contact)
            .where(Contact.account_id == account_id, Contact.phone_e164.is_not(None))
            .order_by(Contact.id.desc())
            .limit(MAX_PHONES)
        ).all()
        phones = [_phone(row, int(counts.get(row.phone_e164 or "", 0))) for row in rows]
    return sorted(phones, key=lambda p: p.received, reverse=True)


def conversation(sessions: sessionmaker[Session], account_id: int, ref: str) -> Conversation:
    """The texts the carrier took for the contact (`ref`: its id or its number) and the
    texts it sent, oldest first; another account's contact is NotFound."""
    with sessions.begin() as session:
        contact = _contact(session, account_id, ref)
        number = contact.phone_e164 or ""
        sent = session.scalars(
            select(SandboxMessage)
            .join(Message, Message.id == SandboxMessage.message_ref)
            .where(Message.account_id == account_id, SandboxMessage.to == number)
            .order_by(SandboxMessage.id.desc())
            .limit(MAX_BUBBLES)
        ).all()
        replies = session.scalars(
            select(InboundMessage)
            .where(
                InboundMessage.account_id == account_id,
                InboundMessage.contact_id == contact.id,
            )
            .order_by(InboundMessage.id.desc())
            .limit(MAX_BUBBLES)
        ).all()
        bubbles = [_received(row) for row in sent] + [_sent(row) for row in replies]
        bubbles.sort(key=lambda b: (_naive(b.at), b.key))
        return Conversation(_phone(contact, len(sent)), bubbles[-MAX_BUBBLES:])


def reply(sessions: sessionmaker[Session], account_id: int, ref: str, body: str) -> list[Received]:
    """The contact texts the account's number, as `sendline sandbox reply` does (R12:
    STOP opts out at once and queues the confirmation the worker then sends)."""
    text = body.strip()
    if not text:
        raise InvalidInput("type a text to send", field="body")
    if len(text) > MAX_REPLY or any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        raise InvalidInput(
            f"a text must be at most {MAX_REPLY} characters, without control characters",
            field="body",
        )
    with sessions.begin() as session:
        number = _contact(session, account_id, ref).phone_e164 or ""
    return receive_text(
        sessions, from_number=number, body=text, account_ref=account_id, account_id=account_id
    )


def _contact(session: Session, account_id: int, ref: str) -> Contact:
    query = select(Contact).where(Contact.account_id == account_id)
    number = parse_id(ref)
    if number is not None:
        query = query.where(Contact.id == number)
    else:
        e164 = check_phone(ref[:64]).e164 if ref.strip().startswith("+") else None
        query = query.where(Contact.phone_e164 == (e164 or "-"))
    found = session.scalars(query.limit(1)).first()
    if found is None or found.phone_e164 is None:
        raise NotFound("no contact with a phone number like that in this account")
    return found


def _phone(row: Contact, received: int) -> Phone:
    name = " ".join(p for p in (row.first_name, row.last_name) if p) or row.email or ""
    return Phone(row.id, name, row.phone_e164 or "", row.sms_consent, received)


def _received(row: SandboxMessage) -> Bubble:
    note = ""
    if row.status in ("undelivered", "failed"):
        code = row.error_code or ""
        note = f"not delivered: {code} {ERRORS.get(code, '')}".strip()
    elif row.status == "sent":
        note = "on its way"
    return Bubble(f"out-{row.id}", row.accepted_at, row.body, mine=False, note=note)


def _sent(row: InboundMessage) -> Bubble:
    return Bubble(f"in-{row.id}", row.received_at, row.body, mine=True, note="")


def _naive(at: datetime) -> datetime:
    # SQLite hands datetimes back naive (UTC); PostgreSQL aware: compare them alike.
    return at.replace(tzinfo=None)
