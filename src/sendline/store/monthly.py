"""The monthly free credits (R2): last month's unused ones expire, this month's are
granted, once per account and month, whoever runs the job and however often.

Closing a month is what makes free credits still held by a reservation expire when
they come back (`store.settlement.returned_late`): the expiry is one rule, written there."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendline.errors import InvalidInput
from sendline.store.credits import Credits
from sendline.store.models import Account, LedgerEntry
from sendline.store.settlement import expiry
from sendline.store.types import utcnow

_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class MonthlyResult:
    account_id: int
    period: str
    granted: int
    expired: int
    skipped: str | None = None  # why nothing was granted, if so


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def check_period(period: str) -> str:
    if not _PERIOD.match(period):
        raise InvalidInput(f"period {period!r} must look like 2026-11")
    return period


def grant_monthly(
    session: Session, period: str | None = None, *, account_ids: list[int] | None = None
) -> list[MonthlyResult]:
    """The monthly job over every account (or those given), in account-id order.

    Locks are taken in id order, so two concurrent runs cannot deadlock; the second
    waits for the first and then finds nothing left to do.
    """
    period = check_period(period or period_of(datetime.now(UTC).date()))
    query = select(Account.id).order_by(Account.id)
    if account_ids is not None:
        query = query.where(Account.id.in_(account_ids))
    return [apply_monthly(session, id_, period) for id_ in session.scalars(query)]


def apply_monthly(session: Session, account_id: int, period: str) -> MonthlyResult:
    """Expire last period's unused free credits and grant this period's (R2).

    Idempotent: the balance lock serializes concurrent runs, and a unique index on
    (account, kind, period) stands behind it.
    """
    credits = Credits(session, account_id)
    account = credits.account()
    row = credits.lock_balance()
    last_grant = _last_period(session, account_id, "grant")
    if last_grant is not None and last_grant >= period:
        return MonthlyResult(account_id, period, 0, 0, f"already granted {last_grant}")
    expired = row.free
    if expired:
        closing = last_grant if _last_period(session, account_id, "expire") != last_grant else None
        credits.append(row, expiry(account_id, expired, utcnow(), period=closing))
    allowance = account.monthly_free_credits
    if not allowance:
        return MonthlyResult(account_id, period, 0, expired, "not eligible")
    note = f"monthly free credits ({account.tier}, legacy)"
    credits.append_entry(row, "grant", allowance, free=allowance, period=period, note=note)
    return MonthlyResult(account_id, period, allowance, expired)


def _last_period(session: Session, account_id: int, kind: str) -> str | None:
    return session.scalars(
        select(func.max(LedgerEntry.period)).where(
            LedgerEntry.account_id == account_id, LedgerEntry.kind == kind
        )
    ).first()
