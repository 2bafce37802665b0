"""Credits as an account's owner sees them: the balance and its ledger (R3).

Monthly grants are in `services.accounts`; `purchase_credits` there is the CLI's
purchase (it answers with the account), `buy_credits` here the API's (it answers with
the ledger line). Both are one `Credits.purchase`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import InvalidInput
from sendline.services import AccountRef, resolve_account
from sendline.store.credit_values import Balance, LedgerAudit
from sendline.store.credits import Credits
from sendline.store.keyset import newest_first
from sendline.store.models import LedgerEntry

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class LedgerLine:
    id: int
    created_at: datetime
    kind: str
    amount: int
    free_delta: int
    purchased_delta: int
    reserved_delta: int
    about: str  # the note, the message it settles, the reservation it belongs to


@dataclass(frozen=True)
class CreditStatement:
    account_name: str
    audit: LedgerAudit  # the balance beside the ledger's sums (always equal)
    entries: list[LedgerLine]  # newest first


def credit_statement(
    sessions: sessionmaker[Session], account_ref: AccountRef, *, entries: int = 10
) -> CreditStatement:
    """The balance, checked against the ledger, and its latest `entries` entries."""
    if not 0 <= entries <= MAX_ENTRIES:
        raise InvalidInput(f"--ledger must be 0-{MAX_ENTRIES:,} entries")
    with sessions.begin() as session:
        account = resolve_account(session, account_ref)
        credits = Credits(session, account.id)
        lines = [_line(entry) for entry in credits.ledger(limit=entries)] if entries else []
        return CreditStatement(account.name, credits.audit(), lines)


def ledger_page(
    sessions: sessionmaker[Session],
    account_ref: AccountRef,
    *,
    limit: int,
    before_id: int | None = None,
) -> list[LedgerLine]:
    """Up to `limit` of the account's ledger entries, newest first, with ids below
    `before_id`: one page of the ledger (keyset, so a deep page costs what the first
    does)."""
    with sessions.begin() as session:
        account = resolve_account(session, account_ref)
        query = select(LedgerEntry).where(LedgerEntry.account_id == account.id)
        query = newest_first(query, LedgerEntry.id, before_id, limit)
        return [_line(entry) for entry in session.scalars(query)]


@dataclass(frozen=True)
class Purchase:
    """A purchase recorded: its ledger line and the balance after it."""

    line: LedgerLine
    balance: Balance


def buy_credits(
    sessions: sessionmaker[Session],
    account_ref: AccountRef,
    amount: int,
    *,
    note: str | None = None,
) -> Purchase:
    """Record a purchase of `amount` credits (they never expire; R2: a current account
    needs the SMS add-on first)."""
    with sessions.begin() as session:
        account = resolve_account(session, account_ref)
        credits = Credits(session, account.id)
        entry = credits.purchase(amount, note=note)
        return Purchase(_line(entry), credits.balance())


def _line(entry: LedgerEntry) -> LedgerLine:
    about = [entry.note or (f"message {entry.message_id}" if entry.message_id else "")]
    if entry.reservation_id is not None:  # a settlement: which reservation it settles
        about.append(f"of reservation {entry.reservation_id}")
    return LedgerLine(
        id=entry.id,
        created_at=entry.created_at,
        kind=entry.kind,
        amount=entry.amount,
        free_delta=entry.free_delta,
        purchased_delta=entry.purchased_delta,
        reserved_delta=entry.reserved_delta,
        about=", ".join(part for part in about if part),
    )
