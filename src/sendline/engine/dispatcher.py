"""The dispatcher: claims due messages from the outbox and hands them to the provider.

The messages table is the queue. A batch is claimed in one statement (`FOR UPDATE SKIP
LOCKED` on PostgreSQL, so any number of workers on any number of machines share it;
SQLite's `BEGIN IMMEDIATE` serializes its single writer), marked `sending` and committed
*before* any provider call. That commit is what makes R17 hold: after a crash, a row
left `sending` is never blindly sent again but reconciled (`reconcile`) by asking the
provider whether it has it.

Right before the calls, consent is read again (R13: an opt-out that arrived after
queueing wins), and again every second while a rate-limited batch drains.

Outcomes are written back in batches, with UPDATEs conditioned on the row still being
ours (`status = 'sending' AND claimed_by = me`): if a reconciler took a row over in the
meantime, exactly one of the two settles it, never both. Credits follow in the same
transaction: charged when the provider accepted, released when it refused for good.

A worker must never call the provider for a row a reconciler may already treat as
abandoned, so it stops calling once its claim is half a lease old and puts the rest back.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine import ratelimit
from sendline.engine.statuses import SettleKind, adopt_record, settle_reservations
from sendline.providers.base import (
    OutboundSms,
    PermanentError,
    Provider,
    ProviderRecord,
    TransientError,
    UnknownOutcome,
)
from sendline.store.engine_models import Message
from sendline.store.models import Account, Contact

log = logging.getLogger(__name__)

BACKOFF_BASE = 2.0  # seconds; doubled per attempt, full jitter
BACKOFF_CAP = 15 * 60.0
CONSENT_MAX_AGE = 1.0  # seconds a consent reading may be old at the provider call (R13)
# Outcomes are written one transaction per batch when the provider answers fast, and at
# least every COMMIT_INTERVAL when it is slow (so receipts find their message soon).
COMMIT_EVERY = 500
COMMIT_INTERVAL = 0.5

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

    def sms(self) -> OutboundSms:
        return OutboundSms(self.id, self.to or "", self.sender, self.body or "", self.segments)


@dataclass(slots=True)
class Outcome:
    job: Job
    status: str  # sent | failed | queued (retry) | unknown
    provider_id: str | None = None
    error_code: str | None = None
    detail: str | None = None
    due_at: datetime | None = None


class Dispatcher:
    """One worker's sending loop body. Not shared between threads; one per process."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        provider: Provider,
        *,
        worker_id: str,
        batch_size: int = 200,
        lease: timedelta = timedelta(seconds=60),
        retry_deadline: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rate_limiter: Callable[..., float] | None = None,
        sender_mps: float | None = None,
        account_mps: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._session_factory = session_factory
        self.provider = provider
        self.worker_id = worker_id
        self.batch_size = batch_size
        self.lease = lease
        self.retry_deadline = retry_deadline
        self._clock = clock
        self._acquire = rate_limiter or ratelimit.acquire
        self.sender_mps = sender_mps
        self.account_mps = account_mps
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._unsent: dict[int, Job] = {}  # claimed, not yet handed to the provider

    # -- control -------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop between messages (safe from a signal handler): the call in flight
        finishes, the rest of the batch is put back in the queue."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def release_claims(self) -> int:
        """Put this worker's claimed rows that never reached the provider back in the queue."""
        with self._lock:
            ids = list(self._unsent)
            self._unsent.clear()
        if not ids:
            return 0
        with self._session_factory.begin() as session:
            result = session.execute(
                update(Message)
                .where(*self._ours(ids))
                .values(
                    status="queued",
                    claimed_by=None,
                    claimed_at=None,
                    attempts=Message.attempts - 1,  # never attempted: no backoff owed
                    updated_at=self._clock(),
                )
                .execution_options(synchronize_session=False)
            )
        return _rowcount(result)

    # -- sending -------------------------------------------------------------------

    def dispatch_due(self) -> int:
        """Claim one batch of due messages and send it; returns how many were claimed."""
        if self._stop.is_set():
            return 0
        claimed_at = self._clock()
        with self._session_factory.begin() as session:
            jobs = self._claim(session, claimed_at)
        if not jobs:
            return 0
        with self._lock:
            self._unsent = {job.id: job for job in jobs}
        try:
            self._send_all(jobs, claimed_at)
        finally:
            self.release_claims()
        return len(jobs)

    def _claim(self, session: Session, now: datetime) -> list[Job]:
        # Two statements, not UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP
        # LOCKED): PostgreSQL may run such a subquery more than once and claim more than n.
        ids = list(
            session.scalars(
                select(Message.id)
                .where(Message.status == "queued", Message.due_at <= now)
                .order_by(Message.due_at)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return []
        rows = session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == "queued")
            .values(
                status="sending",
                claimed_by=self.worker_id,
                claimed_at=now,
                attempts=Message.attempts + 1,
                updated_at=now,
            )
            .returning(*_CLAIM_COLUMNS)
            .execution_options(synchronize_session=False)
        ).all()
        # RETURNING order is unspecified: send in the order claimed (oldest due first).
        jobs = {row[0]: _job(row) for row in rows}
        return [jobs[i] for i in ids if i in jobs]

    def _send_all(self, jobs: Sequence[Job], claimed_at: datetime) -> None:
        pending: list[Outcome] = []
        allowed: set[int] = set()
        screened = -CONSENT_MAX_AGE
        last_commit = time.monotonic()
        try:
            for index, job in enumerate(jobs):
                if self._stop.is_set() or self._claim_expiring(claimed_at):
                    break
                if time.monotonic() - screened >= CONSENT_MAX_AGE:
                    allowed = self._screen(jobs[index:])
                    screened = time.monotonic()
                if job.id not in allowed:
                    continue
                if not self._pace(job):
                    break
                if self._stop.is_set() or self._claim_expiring(claimed_at) or not self._take(job):
                    break
                pending.append(self._call(job))
                if len(pending) >= COMMIT_EVERY or time.monotonic() - last_commit > COMMIT_INTERVAL:
                    self._commit(pending)
                    pending, last_commit = [], time.monotonic()
        finally:
            # Whatever stopped the loop, what the provider already answered is recorded.
            self._commit(pending)

    def _claim_expiring(self, claimed_at: datetime) -> bool:
        # Past half the lease a reconciler may soon call the row abandoned and look it up;
        # a call from us after that lookup could send it twice.
        return self._clock() - claimed_at > self.lease / 2

    def _take(self, job: Job) -> bool:
        """Mark a job as handed over (so release_claims leaves it alone)."""
        with self._lock:
            return self._unsent.pop(job.id, None) is not None

    def _screen(self, jobs: Sequence[Job]) -> set[int]:
        """R13: read consent and sender numbers now; cancel marketing messages to contacts
        no longer opted in. Returns the ids that may be sent."""
        with self._lock:
            jobs = [job for job in jobs if job.id in self._unsent]
        if not jobs:
            return set()
        with self._session_factory.begin() as session:
            rows = session.execute(
                select(Message.id, Contact.sms_consent, Account.sender_number)
                .join(Account, Account.id == Message.account_id)
                .outerjoin(Contact, Contact.id == Message.contact_id)
                .where(Message.id.in_([job.id for job in jobs]))
            ).all()
            facts = {row[0]: (row[1], row[2]) for row in rows}
            refused = []
            for job in jobs:
                consent, job.sender = facts.get(job.id, (None, None))
                if job.kind != "reply" and consent != "opted_in":
                    refused.append(job)
            if refused:
                self._cancel(session, refused)
        with self._lock:
            for job in refused:
                self._unsent.pop(job.id, None)
        return {job.id for job in jobs} - {job.id for job in refused}

    def _cancel(self, session: Session, jobs: Sequence[Job]) -> None:
        rows = session.execute(
            update(Message)
            .where(*self._ours([job.id for job in jobs]))
            .values(
                status="canceled",
                detail="not sent: the contact is no longer opted in (R13)",
                updated_at=self._clock(),
            )
            .returning(Message.account_id, Message.reservation_id)
            .execution_options(synchronize_session=False)
        ).all()
        settle_reservations(session, _reservations(rows), "release")

    def _pace(self, job: Job) -> bool:
        """Wait for the sender's and the account's rate; False if stopped while waiting."""
        cost = max(1, job.segments)
        wait = 0.0
        if self.sender_mps:
            key = f"sender:{job.sender or 'default'}"
            wait = self._acquire(self._session_factory, key, cost, self.sender_mps)
        if self.account_mps:
            key = f"account:{job.account_id}"
            wait = max(wait, self._acquire(self._session_factory, key, cost, self.account_mps))
        return wait <= 0 or not self._stop.wait(wait)

    def _call(self, job: Job) -> Outcome:
        if not job.to or not job.body:
            return Outcome(job, "failed", detail="queued without a destination or a body")
        try:
            accepted = self.provider.send(job.sms())
        except PermanentError as exc:
            return Outcome(job, "failed", error_code=exc.code, detail=str(exc))
        except TransientError as exc:
            return self._retry(job, exc)
        except UnknownOutcome as exc:
            return Outcome(job, "unknown", error_code=exc.code, detail=str(exc))
        except Exception as exc:  # noqa: BLE001 - a call that blew up may still have landed
            log.exception("provider %s raised on message %s", self.provider.name, job.id)
            return Outcome(job, "unknown", detail=f"provider call raised {exc!r}"[:500])
        return Outcome(job, "sent", provider_id=accepted.provider_id)

    def _retry(self, job: Job, exc: TransientError) -> Outcome:
        now = self._clock()
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, job.attempts - 1))
        delay = self._rng.uniform(0.0, ceiling)  # full jitter: retries do not stampede
        if exc.retry_after:
            delay = max(delay, exc.retry_after)
        due = now + timedelta(seconds=delay)
        deadline = job.deadline_at or job.created_at + self.retry_deadline
        if due > deadline:
            detail = f"gave up after {job.attempts} attempts: {exc}"
            return Outcome(job, "failed", error_code=exc.code, detail=detail)
        return Outcome(job, "queued", error_code=exc.code, detail=str(exc), due_at=due)

    # -- recording outcomes --------------------------------------------------------

    def _commit(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        now = self._clock()
        groups: dict[str, list[Outcome]] = {}
        for outcome in outcomes:
            groups.setdefault(outcome.status, []).append(outcome)
        with self._session_factory.begin() as session:
            for status, group in groups.items():
                rows = self._record(session, status, group, now)
                if status in ("sent", "failed"):
                    kind: SettleKind = "charge" if status == "sent" else "release"
                    settle_reservations(session, _reservations(rows), kind)

    def _record(
        self, session: Session, status: str, group: Sequence[Outcome], now: datetime
    ) -> Sequence[Any]:
        """Write one group's outcomes; returns (account_id, reservation_id) of the rows
        that were still ours. Two statements whatever the group's size: the status flip
        (whose RETURNING says which rows we still held), then the per-row columns as one
        executemany (cached SQL, unlike a CASE expression that changes with every batch)."""
        ids = [outcome.job.id for outcome in group]
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status == "sent":
            values |= {"provider": self.provider.name, "sent_at": now}
        elif status == "queued":
            values |= {"claimed_by": None, "claimed_at": None}
        rows = session.execute(
            update(Message)
            .where(*self._ours(ids))
            .values(**values)
            .returning(Message.id, Message.account_id, Message.reservation_id)
            .execution_options(synchronize_session=False)
        ).all()
        still_ours = {row[0] for row in rows}
        per_row = [
            {
                "b_id": outcome.job.id,
                "b_provider_id": outcome.provider_id,
                "b_error_code": outcome.error_code,
                "b_detail": outcome.detail,
                "b_due_at": outcome.due_at,
            }
            for outcome in group
            if outcome.job.id in still_ours
        ]
        if per_row:
            session.connection().execute(_PER_ROW[status], per_row)
        return [(row[1], row[2]) for row in rows]

    def _ours(self, ids: Sequence[int]) -> tuple[Any, ...]:
        """Rows still claimed by this worker: anything else was taken over meanwhile."""
        return (
            Message.id.in_(ids),
            Message.status == "sending",
            Message.claimed_by == self.worker_id,
        )

    # -- reconciliation ------------------------------------------------------------

    def reconcile(self, now: datetime | None = None) -> int:
        """Settle messages whose outcome is not known: `sending` rows whose worker died
        (claim older than the lease) and `unknown` ones. Returns how many were settled.

        Each is looked up at the provider: found -> adopt its id and status and charge;
        not found -> back to the queue (safe: a worker stops calling at half its lease,
        so the dead one cannot still be calling); lookup unsure -> stays `unknown` and is
        looked up again a lease later.
        """
        now = now or self._clock()
        with self._session_factory.begin() as session:
            jobs = self._claim_stale(session, now)
        if not jobs:
            return 0
        found: list[tuple[Job, ProviderRecord | None]] = []
        for job in jobs:
            try:
                found.append((job, self.provider.lookup(job.sms())))
            except UnknownOutcome:
                continue
            except Exception:  # noqa: BLE001 - same as unsure: keep it unknown, try later
                log.exception("lookup of message %s failed", job.id)
        settled = 0
        with self._session_factory.begin() as session:
            for job, record in found:
                settled += self._settle_lookup(session, job, record, now)
        return settled

    def _claim_stale(self, session: Session, now: datetime) -> list[Job]:
        """Take over stale rows as `unknown`, claimed by us, so that no other reconciler
        looks them up at the same time and a late answer from their old worker is refused."""
        stale = (
            Message.status.in_(("sending", "unknown")),
            or_(Message.claimed_at.is_(None), Message.claimed_at < now - self.lease),
        )
        ids = list(
            session.scalars(
                select(Message.id)
                .where(*stale)
                .order_by(Message.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return []
        rows = session.execute(
            update(Message)
            .where(Message.id.in_(ids), *stale)
            .values(status="unknown", claimed_by=self.worker_id, claimed_at=now, updated_at=now)
            .returning(*_CLAIM_COLUMNS)
            .execution_options(synchronize_session=False)
        ).all()
        jobs = [_job(row) for row in rows]
        accounts = {job.account_id for job in jobs}
        senders = {
            row[0]: row[1]
            for row in session.execute(
                select(Account.id, Account.sender_number).where(Account.id.in_(accounts))
            )
        }
        for job in jobs:
            job.sender = senders.get(job.account_id)
        return jobs

    def _settle_lookup(
        self, session: Session, job: Job, record: ProviderRecord | None, now: datetime
    ) -> int:
        message = session.scalars(
            select(Message)
            .where(
                Message.id == job.id,
                Message.status == "unknown",
                Message.claimed_by == self.worker_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
        if message is None:
            return 0  # settled meanwhile (a status callback, another reconciler)
        if record is not None:
            adopt_record(session, message, record, self.provider.name, now)
            return 1
        # The provider never got it: the one backward move, back to the queue.
        message.status = "queued"
        message.claimed_by = None
        message.claimed_at = None
        message.detail = "requeued: the provider never received it (reconciled)"
        message.updated_at = now
        return 1


def _job(row: Any) -> Job:
    return Job(*row)


def _per_row_update(*columns: str) -> Any:
    table = cast(Table, Message.__table__)
    return (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in columns})
    )


# The columns each outcome sets row by row (the status was set for the group at once).
_PER_ROW: dict[str, Any] = {
    "sent": _per_row_update("provider_id"),
    "failed": _per_row_update("error_code", "detail"),
    "queued": _per_row_update("error_code", "detail", "due_at"),
    "unknown": _per_row_update("error_code", "detail"),
}


def _reservations(rows: Sequence[Any]) -> list[tuple[int, int]]:
    return [(row[0], row[1]) for row in rows if row[1] is not None]


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount
