"""The outbox's statements: claiming due rows, recording what the provider answered,
taking over rows whose worker died. The dispatcher decides; this module writes.

Every write after a claim is conditioned on the row still being ours (`status` as we
left it, `claimed_by = me`): if a reconciler took a row over meanwhile, exactly one of
the two settles it, never both, and the credits follow in the same transaction. The
statements are per batch (an id list, one executemany), never per message: the
dispatcher has to keep up with tens of thousands of messages a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, case, or_, select, update
from sqlalchemy.orm import Session

from sendline.engine.statuses import adopt_record
from sendline.providers.base import OutboundSms, ProviderRecord
from sendline.store import activity
from sendline.store.batch_filter import among, unindexed
from sendline.store.batch_writes import update_rows
from sendline.store.engine_models import Message, WorkerHeartbeat
from sendline.store.models import Account
from sendline.store.settlement import SHARE_COLUMNS, SettleKind, settle_shares

_CLAIM_COLUMNS = (
    Message.id,
    Message.account_id,
    Message.contact_id,
    Message.kind,
    Message.to_e164,
    Message.body,
    Message.segments,
    Message.reservation_id,
    Message.attempts,
    Message.created_at,
    Message.deadline_at,
)


@dataclass(slots=True)
class Job:
    """A claimed message, as much of it as the call and its outcome need."""

    id: int
    account_id: int
    contact_id: int | None
    kind: str
    to: str | None
    body: str | None
    segments: int
    reservation_id: int | None
    attempts: int
    created_at: datetime
    deadline_at: datetime | None
    sender: str | None = None
    # Reconciliation's: the provider it was handed to (None: not recorded, the worker
    # died first), and since when its outcome is unknown.
    provider: str | None = None
    unknown_since: datetime | None = None

    def sms(self) -> OutboundSms:
        return OutboundSms(self.id, self.to or "", self.sender, self.body or "", self.segments)


@dataclass(slots=True)
class Outcome:
    job: Job
    # sent | failed | queued (retry) | unknown | deferred (not attempted: paced, back
    # in the queue until due_at)
    status: str
    provider_id: str | None = None
    error_code: str | None = None
    detail: str | None = None
    due_at: datetime | None = None
    # The provider that answered (sent, failed, unknown): recorded on the message, the
    # one a message is handed to (R17: reconciliation asks that one only).
    provider: str | None = None
    opted_out: bool = False  # a carrier's refusal meaning the recipient opted out


def ours(
    session: Session, worker_id: str, ids: Sequence[int], status: str = "sending"
) -> tuple[Any, ...]:
    """Rows still claimed by this worker: anything else was taken over meanwhile."""
    return (
        among(session, Message.id, ids),
        unindexed(Message.status) == status,  # the ids lead (see `unindexed`)
        Message.claimed_by == worker_id,
    )


def claim_due(session: Session, worker_id: str, now: datetime, limit: int) -> list[Job]:
    """Mark up to `limit` due rows `sending` for this worker, oldest due first."""
    due = (Message.status == "queued", Message.due_at <= now)
    still_due = (unindexed(Message.status) == "queued", Message.due_at <= now)
    values = {
        "status": "sending",
        "claimed_by": worker_id,
        "claimed_at": now,
        "attempts": Message.attempts + 1,
        "updated_at": now,
    }
    jobs = _claim(session, (due, still_due), Message.due_at, limit, values)
    activity.message_statuses(session, activity.keys(jobs), "sending", now)
    return jobs


def claim_new(rows: Sequence[dict[str, Any]], worker_id: str, now: datetime) -> list[Job]:
    """Claim new message rows due now for this worker, before they are written.

    The runner queues a blast's messages and its own worker sends them next: writing
    them `queued` and then claiming them back would cost an UPDATE of every row for
    nothing. Written `sending` under our claim in the transaction that creates them,
    they are claimed exactly as `claim_due` would claim them (R17 holds the same way:
    a crash before the call leaves them to reconciliation, never to a second send).
    Every row gets the claim columns, set or not: the insert is one executemany."""
    jobs: list[Job] = []
    for row in rows:
        due = row["status"] == "queued" and row["due_at"] <= now
        row["claimed_by"], row["claimed_at"] = (worker_id, now) if due else (None, None)
        row["attempts"] = 1 if due else 0
        if not due:
            continue
        row["status"] = "sending"
        # The columns a claim returns (no deadline for a new message: it is NULL).
        jobs.append(_job([row.get(column.key) for column in _CLAIM_COLUMNS]))
    return jobs


def claim_stale(
    session: Session, worker_id: str, now: datetime, lease: timedelta, limit: int
) -> list[Job]:
    """Take over rows whose outcome is unknown (`unknown`, or `sending` under a claim
    older than the lease or held by a worker whose heartbeat expired) as `unknown`
    claimed by us: no other reconciler looks them up at the same time, and a late
    answer from their old worker is refused. Never back to the queue from here: they
    are looked up first (`settle_lookup`), as the call may have gone out (R17)."""
    dead = select(WorkerHeartbeat.id).where(WorkerHeartbeat.expires_at < now)
    expired = or_(
        Message.claimed_at.is_(None),
        Message.claimed_at < now - lease,
        Message.claimed_by.in_(dead.scalar_subquery()),
    )
    stale = (Message.status.in_(("sending", "unknown")), expired)
    still_stale = (unindexed(Message.status).in_(("sending", "unknown")), expired)
    # An `unknown` row keeps its updated_at: since when its outcome is unknown, which
    # the R17 deadline counts from (nothing else writes an unknown row but its settling).
    values = {
        "status": "unknown",
        "claimed_by": worker_id,
        "claimed_at": now,
        "updated_at": case((Message.status == "unknown", Message.updated_at), else_=now),
    }
    was: dict[int, str] = {}  # an `unknown` row taken over again is no news
    jobs = _claim(session, (stale, still_stale), Message.id, limit, values, was)
    newly = activity.keys(job for job in jobs if was[job.id] == "sending")
    activity.message_statuses(session, newly, "unknown", now)
    if not jobs:
        return jobs
    accounts = {job.account_id for job in jobs}
    senders = {
        row[0]: row[1]
        for row in session.execute(
            select(Account.id, Account.sender_number).where(Account.id.in_(accounts))
        )
    }
    handed = {
        row[0]: row[1:]
        for row in session.execute(
            select(Message.id, Message.provider, Message.updated_at).where(
                among(session, Message.id, [job.id for job in jobs])
            )
        )
    }
    for job in jobs:
        job.sender = senders.get(job.account_id)
        job.provider, job.unknown_since = handed.get(job.id, (None, None))
    return jobs


def release(session: Session, worker_id: str, ids: Sequence[int], now: datetime) -> int:
    """Put claimed rows that never reached the provider back in the queue."""
    rows = session.execute(
        update(Message)
        .where(*ours(session, worker_id, ids))
        .values(
            status="queued",
            claimed_by=None,
            claimed_at=None,
            attempts=Message.attempts - 1,  # never attempted: no backoff owed
            updated_at=now,
        )
        .returning(*_KEY)
        .execution_options(synchronize_session=False)
    ).all()
    activity.message_statuses(session, rows, "queued", now)
    return len(rows)


def cancel(session: Session, worker_id: str, ids: Sequence[int], detail: str, now: datetime) -> int:
    """Cancel claimed rows (R13) and release their credits."""
    rows = session.execute(
        update(Message)
        .where(*ours(session, worker_id, ids))
        .values(status="canceled", detail=detail, updated_at=now)
        .returning(*SHARE_COLUMNS, Message.contact_id)
        .execution_options(synchronize_session=False)
    ).all()
    settle_shares(session, rows, "release")
    activity.message_statuses(session, activity.share_keys(rows), "canceled", now, detail=detail)
    return len(rows)


def give_up(
    session: Session, worker_id: str, ids: Sequence[int], code: str, detail: str, now: datetime
) -> int:
    """Fail `unknown` rows we took over that nothing confirmed in time (R17's deadline),
    releasing their credits: never resent."""
    if not ids:
        return 0
    rows = session.execute(
        update(Message)
        .where(*ours(session, worker_id, ids, status="unknown"))
        .values(status="failed", error_code=code, detail=detail, updated_at=now)
        .returning(*SHARE_COLUMNS, Message.contact_id)
        .execution_options(synchronize_session=False)
    ).all()
    settle_shares(session, rows, "release")
    activity.message_statuses(
        session, activity.share_keys(rows), "failed", now, detail=detail, error_code=code
    )
    return len(rows)


def record_outcomes(
    session: Session,
    worker_id: str,
    provider: str | None,
    outcomes: Sequence[Outcome],
    now: datetime,
) -> None:
    """Write what the providers answered, and settle the credits it decides. Each
    outcome names its provider; `provider` is the one of those that name none."""
    groups: dict[tuple[str, str | None], list[Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.status, outcome.provider or provider), []).append(outcome)
    for (status, name), group in groups.items():
        rows = _record(session, worker_id, name, status, group, now)
        if status in ("sent", "failed"):
            kind: SettleKind = "charge" if status == "sent" else "release"
            settle_shares(session, rows, kind)
        ours, reached = {row[0] for row in rows}, "queued" if status == "deferred" else status
        activity.message_outcomes(session, group, ours, reached, now)


def _record(
    session: Session,
    worker_id: str,
    provider: str | None,
    status: str,
    group: Sequence[Outcome],
    now: datetime,
) -> Sequence[Any]:
    """One group's outcomes; returns the rows still ours (SHARE_COLUMNS).

    Two statements whatever the group's size: which rows we still hold (locked until
    commit on PostgreSQL; SQLite's writer holds the whole database), then one UPDATE of
    exactly those, the group's values bound once and each row's own beside them. One
    write per row: on PostgreSQL every UPDATE of a row is a new row version and new
    index entries, so a status flip followed by a per-row update cost twice that.
    """
    ids = [outcome.job.id for outcome in group]
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == "sent":
        # What it waited on (a retry's error, the rate) no longer describes it.
        values |= {"sent_at": now, "error_code": None, "detail": None}
    elif status in ("queued", "deferred"):
        # Never accepted: the next attempt may go to another provider of the chain.
        values |= {"status": "queued", "claimed_by": None, "claimed_at": None, "provider": None}
    if provider is not None and status in ("sent", "failed", "unknown"):
        values["provider"] = provider  # handed to it (or refused by it)
    rows = session.execute(
        select(*SHARE_COLUMNS).where(*ours(session, worker_id, ids)).with_for_update()
    ).all()
    still_ours = {row[0] for row in rows}
    per_row = []
    for outcome in group:
        if outcome.job.id not in still_ours:
            continue
        row = {"id": outcome.job.id, **{name: getattr(outcome, name) for name in _PER_ROW[status]}}
        if status == "deferred":
            # Never attempted: no backoff owed. The row is locked and ours, so its count
            # is still the one our claim set.
            row["attempts"] = outcome.job.attempts - 1
        per_row.append(row)
    update_rows(session, _MESSAGES, per_row, fixed=values)
    return rows


def settle_lookup(
    session: Session,
    worker_id: str,
    provider: str,
    job: Job,
    record: ProviderRecord | None,
    now: datetime,
) -> int:
    """Apply what a lookup found for a row we took over; 1 if settled, 0 if gone."""
    message = session.scalars(
        select(Message)
        .where(*ours(session, worker_id, [job.id], status="unknown"))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if message is None:
        return 0  # settled meanwhile (a status callback, another reconciler)
    if record is not None:
        adopt_record(session, message, record, provider, now)
        return 1
    # The provider never got it: the one backward move, back to the queue (free to go
    # to any provider of the chain again).
    message.status = "queued"
    message.provider = None
    message.claimed_by = None
    message.claimed_at = None
    message.detail = "requeued: the provider never received it (reconciled)"
    message.updated_at = now
    activity.message_statuses(
        session, activity.keys([message]), "queued", now, detail=message.detail
    )
    return 1


def _claim(
    session: Session,
    conditions: tuple[tuple[Any, ...], tuple[Any, ...]],
    order: Any,
    limit: int,
    values: dict[str, Any],
    was: dict[int, str] | None = None,
) -> list[Job]:
    """Lock up to `limit` rows meeting `conditions` (skipping rows other workers hold),
    set `values` on those still meeting them, and return them in `order`.

    `conditions` twice: as the index should serve them to find the rows, and as a
    re-check of the rows found that leaves the index to the id list (`unindexed`).
    `was` gets each row's status before (locked: it is what the update changes)."""
    find, recheck = conditions
    # Two statements, not UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP
    # LOCKED): PostgreSQL may run such a subquery more than once and claim more than n.
    found = session.execute(
        select(Message.id, Message.status)
        .where(*find)
        .order_by(order)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    ids = [row[0] for row in found]
    if was is not None:
        was.update((row[0], row[1]) for row in found)
    if not ids:
        return []
    rows = session.execute(
        update(Message)
        .where(among(session, Message.id, ids), *recheck)
        .values(**values)
        .returning(*_CLAIM_COLUMNS)
        .execution_options(synchronize_session=False)
    ).all()
    # RETURNING order is unspecified: keep the order claimed.
    jobs = {row[0]: _job(row) for row in rows}
    return [jobs[i] for i in ids if i in jobs]


def _job(row: Any) -> Job:
    return Job(*row)


_KEY = (Message.id, Message.account_id, Message.contact_id)
_MESSAGES = cast(Table, Message.__table__)

# The columns each outcome sets row by row (the status was set for the group at once);
# Outcome's attributes carry the same names.
_PER_ROW: dict[str, tuple[str, ...]] = {
    "sent": ("provider_id",),
    "failed": ("error_code", "detail"),
    "queued": ("error_code", "detail", "due_at"),
    "unknown": ("error_code", "detail"),
    "deferred": ("detail", "due_at"),
}
