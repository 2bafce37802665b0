"""The overview: an account at a glance and what needs action.

Daily counts over the last N days (UTC days), each from the timestamp that says when it
happened: sent (`sent_at`), delivered (`delivered_at`), failed or undelivered (the
message's last change), held (each `message.held` event: a hold is a thing that happens,
and a release that holds again is another) and opt-outs (consent records). Then what
waits for a person: held messages by reason with the fix for each, contacts whose number
cannot be texted, inbound replies awaiting review; and the credit balance with its
latest ledger entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal_column, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.verdicts import HOLD_FIXES
from sendline.errors import InvalidInput
from sendline.services.credits import CreditStatement, credit_statement
from sendline.store.engine_models import InboundMessage, Message
from sendline.store.event_models import AccountEvent
from sendline.store.models import ConsentEvent, Contact

MAX_DAYS = 366
SERIES = ("sent", "delivered", "failed", "held", "opt_outs")


@dataclass
class DayCounts:
    day: date
    sent: int = 0
    delivered: int = 0
    failed: int = 0  # failed or undelivered
    held: int = 0
    opt_outs: int = 0

    def get(self, series: str) -> int:
        value: int = getattr(self, series)
        return value


@dataclass(frozen=True)
class HeldReason:
    reason: str
    count: int
    fix: str


@dataclass(frozen=True)
class Overview:
    credits: CreditStatement
    days: list[DayCounts]
    held: list[HeldReason]
    invalid_numbers: int  # contacts whose default phone is not a valid number (R8)
    landlines: int
    review_queue: int  # inbound replies that may be revocations, awaiting a person
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def held_total(self) -> int:
        return sum(h.count for h in self.held)

    @property
    def needs_action(self) -> bool:
        return bool(self.held or self.invalid_numbers or self.landlines or self.review_queue)


def account_overview(
    sessions: sessionmaker[Session],
    account_id: int,
    *,
    days: int = 30,
    today: date | None = None,
    ledger: int = 10,
) -> Overview:
    """The overview of `account_id` over the `days` days up to `today` (UTC)."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be 1-{MAX_DAYS}", field="days")
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    statement = credit_statement(sessions, account_id, entries=ledger)
    with sessions.begin() as session:
        series = daily_counts(session, account_id, first, today)
        held = held_by_reason(session, account_id)
        phones = _phone_problems(session, account_id)
        review = session.scalar(
            select(func.count()).where(
                InboundMessage.account_id == account_id,
                InboundMessage.action == "review",
                InboundMessage.reviewed_at.is_(None),
            )
        )
    totals = {name: sum(d.get(name) for d in series) for name in SERIES}
    return Overview(
        credits=statement,
        days=series,
        held=held,
        invalid_numbers=phones.get("invalid_phone", 0),
        landlines=phones.get("landline", 0),
        review_queue=int(review or 0),
        totals=totals,
    )


def daily_counts(session: Session, account_id: int, first: date, last: date) -> list[DayCounts]:
    """One `DayCounts` per UTC day from `first` to `last`, zeros included."""
    since = datetime.combine(first, time(), tzinfo=UTC)
    span = range((last - first).days + 1)
    by_day = {first + timedelta(days=n): DayCounts(first + timedelta(days=n)) for n in span}
    for sent, delivered, failed, count in session.execute(
        _message_days(session, account_id, since)
    ):
        for name, day in (("sent", sent), ("delivered", delivered), ("failed", failed)):
            counts = by_day.get(_as_date(day)) if day is not None else None
            if counts is not None:
                setattr(counts, name, counts.get(name) + int(count))
    events: list[tuple[str, Any, tuple[ColumnElement[bool], ...]]] = [
        (
            "held",
            AccountEvent.created_at,
            (AccountEvent.account_id == account_id, AccountEvent.kind == "message.held"),
        ),
        (
            "opt_outs",
            ConsentEvent.occurred_at,
            (ConsentEvent.account_id == account_id, ConsentEvent.kind == "opt_out"),
        ),
    ]
    for name, column, where in events:
        day = _utc_day(session, column)
        query = select(day, func.count()).where(*where, column >= since).group_by(day)
        for found, count in session.execute(query):
            counts = by_day.get(_as_date(found))
            if counts is not None:
                setattr(counts, name, int(count))
    return list(by_day.values())


def _message_days(session: Session, account_id: int, since: datetime) -> Select[Any]:
    """Sent, delivered and failed days of the account's messages in one pass over them:
    a message changed in the window is one that was sent, delivered or failed in it
    (each of those moves `updated_at`), grouped by the three days (None outside)."""

    def day_if(happened: ColumnElement[bool], column: Any) -> ColumnElement[Any]:
        return case((happened, _utc_day(session, column)), else_=None)

    failed = Message.status.in_(("failed", "undelivered"))
    return (
        select(
            day_if(Message.sent_at >= since, Message.sent_at),
            day_if(Message.delivered_at >= since, Message.delivered_at),
            day_if(and_(failed, Message.updated_at >= since), Message.updated_at),
            func.count(),
        )
        .where(Message.account_id == account_id, Message.updated_at >= since)
        # By position: the expressions hold parameters, which PostgreSQL would not
        # match between the select list and a GROUP BY of the same expressions.
        .group_by(literal_column("1"), literal_column("2"), literal_column("3"))
    )


def held_by_reason(session: Session, account_id: int) -> list[HeldReason]:
    """The account's held messages by reason, most first, each with what fixes it."""
    rows = session.execute(
        select(Message.held_reason, func.count())
        .where(Message.account_id == account_id, Message.status == "held")
        .group_by(Message.held_reason)
    ).all()
    found = [
        HeldReason(r or "held", int(n), HOLD_FIXES.get(r or "", "see the message")) for r, n in rows
    ]
    return sorted(found, key=lambda h: (-h.count, h.reason))


def _phone_problems(session: Session, account_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Contact.phone_status, func.count())
        .where(
            Contact.account_id == account_id,
            Contact.phone_status.in_(("invalid_phone", "landline")),
        )
        .group_by(Contact.phone_status)
    )
    return {status: int(count) for status, count in rows}


def _utc_day(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp. SQLite stores naive UTC text; PostgreSQL's
    timestamptz would give the session time zone's day without the conversion."""
    if session.get_bind().dialect.name == "postgresql":
        # A literal, not a parameter: the same expression must group and select.
        return func.date(func.timezone(literal_column("'UTC'"), column))
    return func.substr(column, 1, 10)  # naive UTC text: its first ten characters


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
