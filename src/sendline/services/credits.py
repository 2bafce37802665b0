"""Credits as an account's owner sees them: the balance and its ledger (R3).

Purchases and monthly grants are in `services.accounts` (they change the account's
plan state too); this module only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import InvalidInput
from sendline.services import AccountRef, resolve_account
from sendline.store.credit_values import LedgerAudit
from sendline.store.credits import Credits
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
