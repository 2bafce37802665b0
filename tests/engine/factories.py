"""Test data for the delivery side: accounts with credits, consenting contacts, and
queued messages with their credit reservations (as the pipeline leaves them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session

from sendline.store.accounts import Accounts
from sendline.store.consent import Consent
from sendline.store.contacts import Contacts
from sendline.store.credits import Credits
from sendline.store.engine_models import Message
from sendline.store.models import Account, Contact, LedgerEntry

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
SENDER = "+14155550000"
DISCLOSURE = "Yes, text me offers from Demo (up to 3/day). Reply STOP to opt out."


@dataclass(frozen=True)
class World:
    account: Account
    contact: Contact


def make_account(
    session: Session,
    name: str = "demo",
    *,
    credits: int = 1000,
    purchased_on: date = date(2024, 6, 1),  # current cohort; before 2023-01-03: legacy
    **settings: Any,
) -> Account:
    settings.setdefault("sender_number", SENDER)
    # Sending all day unless a test is about quiet hours (R14): workers here run on the
    # real clock, and a test must not depend on the hour it runs at.
    settings.setdefault("quiet_start", 0)
    settings.setdefault("quiet_end", 24 * 60)
    account = Accounts(session).create(
        name,
        product_line="marketing",
        tier="plus",
        last_purchase_on=purchased_on,
        sms_addon=True,
        **settings,
    )
    if credits:
        Credits(session, account.id).purchase(credits)
    session.commit()
    return account


def make_contact(
    session: Session, account: Account, phone: str = "+14158675309", *, consent: bool = True
) -> Contact:
    contact = Contacts(session, account.id).create(phone=phone, first_name="Ada")
    if consent:
        Consent(session, account.id).record(
            contact.id,
            "opt_in",
            "form",
            source="signup form",
            disclosure=DISCLOSURE,
            occurred_at=NOW - timedelta(days=30),  # before anything a test does at NOW
        )
    session.commit()
    return contact


def make_world(session: Session, **settings: Any) -> World:
    account = make_account(session, **settings)
    return World(account, make_contact(session, account))


def queue_message(
    session: Session,
    account: Account,
    contact: Contact | None,
    *,
    to: str | None = None,
    body: str = "Spring sale: 20% off today. Reply STOP to opt out",
    kind: str = "marketing",
    segments: int = 1,
    due_at: datetime = NOW,
    created_at: datetime = NOW,
) -> Message:
    """A queued message holding its credits, committed (what the pipeline produces)."""
    message = Message(
        account_id=account.id,
        contact_id=contact.id if contact is not None else None,
        kind=kind,
        to_e164=to or (contact.phone_e164 if contact is not None else None),
        body=body,
        segments=segments,
        credits=segments,
        status="queued",
        due_at=due_at,
        created_at=created_at,
        updated_at=created_at,
    )
    session.add(message)
    session.flush()
    reservation = Credits(session, account.id).reserve(segments, message_id=message.id)
    message.reservation_id, message.credits_free = reservation.id, reservation.free
    session.commit()
    return message


def queue_many(
    session: Session, account: Account, contacts: list[Contact], count: int, *, due_at: datetime
) -> list[int]:
    """`count` queued one-credit messages in bulk, round-robin over `contacts`, sharing one
    reservation as a blast's batch does (`Credits.reserve_many`): a few statements in
    all instead of thousands of round trips."""
    rows = [
        {
            "account_id": account.id,
            "contact_id": contacts[i % len(contacts)].id,
            "kind": "marketing",
            "to_e164": contacts[i % len(contacts)].phone_e164,
            "body": f"Offer {i}: 20% off today. Reply STOP to opt out",
            "segments": 1,
            "credits": 1,
            "status": "queued",
            "due_at": due_at,
            "attempts": 0,
            "created_at": due_at,
            "updated_at": due_at,
        }
        for i in range(count)
    ]
    ids = list(
        session.scalars(insert(Message).returning(Message.id, sort_by_parameter_order=True), rows)
    )
    shares = Credits(session, account.id).reserve_many([(message_id, 1) for message_id in ids])
    assert None not in shares, "the account has too few credits for the messages"
    session.execute(
        update(Message),
        [
            {"id": m, "reservation_id": share.reservation_id, "credits_free": share.free}
            for m, share in zip(ids, shares, strict=True)
        ],
    )
    session.commit()
    if session.get_bind().dialect.name == "postgresql":
        # Fresh statistics, as autovacuum would have them by the time a real outbox
        # holds this many rows; without them the planner sorts the whole queue.
        session.execute(text("ANALYZE messages, credit_ledger"))
        session.commit()
    return ids


def message(session: Session, message_id: int) -> Message:
    """The message as stored now. Ends the read transaction: on SQLite an open one would
    hold the write lock (BEGIN IMMEDIATE) and block the workers under test."""
    found = session.get(Message, message_id, populate_existing=True)
    assert found is not None
    session.commit()
    return found


def reservation_state(session: Session, account_id: int, msg: Message) -> str:
    """The state of a message's own reservation (one made for it alone)."""
    assert msg.reservation_id is not None
    reservation = Credits(session, account_id).reservation(msg.reservation_id)
    session.commit()
    assert reservation.message_id == msg.id, "a batch's reservation: see assert_ledger_ok"
    return reservation.state


def assert_ledger_ok(session: Session, account_id: int) -> None:
    """The ledger sums to the balance; reserved credits are exactly those of the messages
    not yet settled; and every reservation is its messages' credits, each settled once:
    what it holds = charged + released + still open, refunds within charges."""
    audit = Credits(session, account_id).audit()
    assert audit.ok, f"ledger {audit.ledger} != balance {audit.balance}"
    entries = session.execute(
        select(
            LedgerEntry.id, LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.reservation_id
        ).where(LedgerEntry.account_id == account_id)
    ).all()
    messages = session.execute(
        select(Message.reservation_id, Message.credits, Message.status).where(
            Message.account_id == account_id, Message.reservation_id.is_not(None)
        )
    ).all()
    session.commit()
    held: dict[int, int] = {e.id: e.amount for e in entries if e.kind == "reserve"}
    settled: dict[tuple[int, str], int] = {}
    for entry in entries:
        if entry.kind in ("charge", "release", "refund"):
            key = (entry.reservation_id, entry.kind)
            settled[key] = settled.get(key, 0) + entry.amount
    open_credits: dict[int, int] = {}
    for reservation_id, credits, status in messages:
        if status in ("queued", "sending", "unknown"):
            open_credits[reservation_id] = open_credits.get(reservation_id, 0) + credits
    assert audit.balance.reserved == sum(open_credits.values())
    for reservation_id, amount in held.items():
        charged = settled.get((reservation_id, "charge"), 0)
        released = settled.get((reservation_id, "release"), 0)
        assert amount == charged + released + open_credits.get(reservation_id, 0)
        assert settled.get((reservation_id, "refund"), 0) <= charged
