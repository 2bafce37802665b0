"""The dispatcher: claims due messages from the outbox and hands them to the provider.

The messages table is the queue. A batch is claimed in one transaction (`FOR UPDATE
SKIP LOCKED` on PostgreSQL, so any number of workers on any number of machines share it;
SQLite's `BEGIN IMMEDIATE` serializes its single writer), marked `sending` and committed
*before* any provider call. That commit is what makes R17 hold: after a crash, a row
left `sending` is never blindly sent again but reconciled (`reconcile`) by asking the
provider whether it has it.

Messages an automation step queues due now skip the claim: the worker's runner writes
them `sending` under this worker's claim in the transaction that creates them
(`outbox.claim_new`), and the worker hands them to `dispatch_claimed` next. R17 holds
the same way (the claim is committed before any call; a crash leaves them to
`reconcile`), for one row write less per message and one poll less of latency.

Right before the calls, consent is read again (R13: an opt-out that arrived after
queueing wins), and again every second while a rate-limited batch drains.

Outcomes are written back in batches (`outbox.record_outcomes`), conditioned on the row
still being ours, with the credits they decide in the same transaction.

A worker must never call the provider for a row a reconciler may already treat as
abandoned, so it stops calling once its claim is half a lease old and puts the rest back.

Under a sender or account rate (SENDLINE_SENDER_MPS, SENDLINE_ACCOUNT_MPS) messages go
one at a time; one whose slot is far off goes back to the queue due then, instead of
holding up the rest of the batch (`engine/pacing.py`).

A provider gets up to its `window_size` messages in one exchange (`send_window`, like
an SMPP window: each message answered on its own) when no rate limit paces the sender;
one without windows declares 1 (the interface's default) and is called per message.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine import outbox
from sendline.engine.outbox import Job, Outcome
from sendline.engine.pacing import PaceClock, Pacer
from sendline.engine.zones import Zones, ringing_zones
from sendline.providers.base import (
    Accepted,
    Answer,
    PermanentError,
    Provider,
    ProviderError,
    ProviderRecord,
    TransientError,
    UnknownOutcome,
)
from sendline.sms.schedule import next_send_time
from sendline.store.batch_filter import among
from sendline.store.engine_models import Message
from sendline.store.models import Account, Contact

log = logging.getLogger(__name__)

BACKOFF_BASE = 2.0  # seconds; doubled per attempt, full jitter
BACKOFF_CAP = 15 * 60.0
CONSENT_MAX_AGE = 1.0  # seconds a consent reading may be old at the provider call (R13)
# Outcomes are written one transaction per worker pass when the provider answers fast
# (a pass sends what two runner batches queued: 400 at the default batch size, 1,000 at
# `--batch-size 500`), and at least every COMMIT_INTERVAL when it is slow (so receipts
# find their message soon). Each commit writes the pages it dirtied to the WAL again,
# so fewer, larger ones write less; a crash leaves at most that many for reconciliation
# to look up, never to resend.
COMMIT_EVERY = 1000
COMMIT_INTERVAL = 0.5
R13_DETAIL = "not sent: the contact is no longer opted in (R13)"
QUIET = "waiting for the end of the recipient's quiet hours (R14)"
PACED = "waiting for the sender's rate limit (SENDLINE_SENDER_MPS / SENDLINE_ACCOUNT_MPS)"

_SCREEN_COLUMNS = (
    Message.id,
    Contact.sms_consent,
    Account.sender_number,
    Contact.time_zone,
    Account.quiet_start,
    Account.quiet_end,
    Message.transactional,
)
_UNKNOWN = (None, None, None, 0, 0, False)  # a row gone meanwhile: not opted in, sent nowhere


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
        sender_mps: float | None = None,
        account_mps: float | None = None,
        rng: random.Random | None = None,
        pace_clock: PaceClock | None = None,  # None: the database's clock, real sleeps
    ) -> None:
        self._session_factory = session_factory
        self.provider = provider
        self.worker_id = worker_id
        self.batch_size = batch_size
        self.lease = lease
        self.retry_deadline = retry_deadline
        self._clock = clock
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        paced = bool(sender_mps or account_mps)
        self._pacer = (
            Pacer(session_factory, self._stop, sender_mps, account_mps, pace_clock)
            if paced
            else None
        )
        self._lock = threading.Lock()
        self._unsent: dict[int, Job] = {}  # claimed, not yet handed to the provider
        # Whether this worker may still call the provider: its heartbeat's `fresh`, set
        # by the worker that runs one (a bare dispatcher relies on the lease alone).
        self.alive: Callable[[], bool] = lambda: True

    # -- control -------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop between messages (safe from a signal handler): the call in flight
        finishes, the rest of the batch is put back in the queue."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def release_claims(self, also: Sequence[Job] = ()) -> int:
        """Put this worker's claimed rows that never reached the provider back in the
        queue, with `also` (claimed for it, never handed to it)."""
        with self._lock:
            ids = [*self._unsent, *(job.id for job in also)]
            self._unsent.clear()
        if not ids:
            return 0
        with self._session_factory.begin() as session:
            return outbox.release(session, self.worker_id, ids, self._clock())

    # -- sending -------------------------------------------------------------------

    def dispatch_due(self) -> int:
        """Claim one batch of due messages and send it; returns how many were claimed."""
        if self._stop.is_set():
            return 0
        claimed_at = self._clock()
        with self._session_factory.begin() as session:
            jobs = outbox.claim_due(session, self.worker_id, claimed_at, self.batch_size)
        return self.dispatch_claimed(jobs, claimed_at)

    def dispatch_claimed(self, jobs: Sequence[Job], claimed_at: datetime) -> int:
        """Send messages this worker claimed at `claimed_at` (by `claim_due`, or by the
        runner as it queued them); what is not sent goes back to the queue."""
        if not jobs:
            return 0
        with self._lock:
            self._unsent = {job.id: job for job in jobs}
        try:
            if not self._stop.is_set():
                self._send_all(jobs, claimed_at)
        finally:
            self.release_claims()
        return len(jobs)

    def _send_all(self, jobs: Sequence[Job], claimed_at: datetime) -> None:
        size = self._window_size()
        pending: list[Outcome] = []
        allowed: set[int] = set()
        screened = -CONSENT_MAX_AGE
        last_commit = time.monotonic()
        if self._pacer is not None:
            self._pacer.start_batch(self._clock())
        try:
            for start in range(0, len(jobs), size):
                if self._must_stop(claimed_at):
                    break
                if time.monotonic() - screened >= CONSENT_MAX_AGE:
                    allowed = self._screen(jobs[start:])
                    screened = time.monotonic()
                window = [job for job in jobs[start : start + size] if job.id in allowed]
                if not window:
                    continue
                if self._pacer is not None:
                    clear = self._pacer.clear_to_send(window[0], self._clock())
                    if clear is False:
                        break
                    if isinstance(clear, datetime):
                        pending.extend(
                            Outcome(j, "deferred", detail=PACED, due_at=clear)
                            for j in self._take(window)
                        )
                        continue
                if self._must_stop(claimed_at):
                    break
                pending.extend(self._call(self._take(window)))
                if len(pending) >= COMMIT_EVERY or time.monotonic() - last_commit > COMMIT_INTERVAL:
                    self._commit(pending)
                    pending, last_commit = [], time.monotonic()
        finally:
            # Whatever stopped the loop, what the provider already answered is recorded.
            self._commit(pending)

    def _window_size(self) -> int:
        if self._pacer is not None:  # paced: one message at a time
            return 1
        return max(1, self.provider.window_size)

    def _must_stop(self, claimed_at: datetime) -> bool:
        # Past half the lease (or half our heartbeat's declared window, when our beats
        # no longer reach the database) a reconciler may soon call the row abandoned and
        # look it up; a call from us after that lookup could send it twice.
        if self._stop.is_set() or not self.alive():
            return True
        return self._clock() - claimed_at > self.lease / 2

    def _take(self, window: Sequence[Job]) -> list[Job]:
        """Mark jobs as handed over (release_claims leaves them alone from now on)."""
        with self._lock:
            return [job for job in window if self._unsent.pop(job.id, None) is not None]

    def _screen(self, jobs: Sequence[Job]) -> set[int]:
        """Right before the calls, read consent, sender numbers and the clock again.

        R13: marketing messages to contacts no longer opted in are canceled. R14: one
        that waited into the recipient's quiet hours (a backlog, a retry's backoff, the
        sender's rate) goes back to the queue, due when the window opens. Returns the
        ids that may be sent."""
        with self._lock:
            jobs = [job for job in jobs if job.id in self._unsent]
        if not jobs:
            return set()
        now = self._clock()
        with self._session_factory.begin() as session:
            rows = session.execute(
                select(*_SCREEN_COLUMNS)
                .join(Account, Account.id == Message.account_id)
                .outerjoin(Contact, Contact.id == Message.contact_id)
                .where(among(session, Message.id, [job.id for job in jobs]))
            ).all()
            facts = {row[0]: row[1:] for row in rows}
            refused, later = [], []
            windows: dict[tuple[Zones, int, int], datetime] = {}
            for job in jobs:
                consent, job.sender, zone, start, end, urgent = facts.get(job.id, _UNKNOWN)
                if job.kind == "reply":
                    continue  # transactional: an opt-out confirmation goes at once
                if consent != "opted_in":
                    refused.append(job.id)
                    continue
                if urgent:
                    continue  # an order or shipping text: quiet hours are for marketing
                due = windows.get(key := (ringing_zones(job.to, zone), start, end))
                if due is None:  # numbers sharing zones and window share the answer
                    due = windows[key] = next_send_time(now, *key)
                if due > now:
                    later.append(Outcome(job, "deferred", detail=QUIET, due_at=due))
            if refused:
                outbox.cancel(session, self.worker_id, refused, R13_DETAIL, now)
            if later:
                outbox.record_outcomes(session, self.worker_id, self.provider.name, later, now)
        gone = set(refused) | {outcome.job.id for outcome in later}
        with self._lock:
            for job_id in gone:
                self._unsent.pop(job_id, None)
        return {job.id for job in jobs} - gone

    def _call(self, window: Sequence[Job]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        ready: list[Job] = []
        for job in window:
            if job.to and job.body:
                ready.append(job)
            else:
                outcomes.append(Outcome(job, "failed", detail="queued without a destination"))
        if not ready:
            return outcomes
        try:
            answers = self._exchange(ready)
        except Exception as exc:  # noqa: BLE001 - the window may have landed: unknown
            log.exception("provider %s failed on a window of %d", self.provider.name, len(ready))
            detail = f"provider call raised {exc!r}"[:500]
            return outcomes + [Outcome(job, "unknown", detail=detail) for job in ready]
        return outcomes + [self._outcome(j, a) for j, a in zip(ready, answers, strict=True)]

    def _exchange(self, jobs: Sequence[Job]) -> list[Answer]:
        if len(jobs) > 1:
            return self.provider.send_window([j.sms() for j in jobs])
        try:
            return [self.provider.send(jobs[0].sms())]
        except ProviderError as exc:
            return [exc]
        except Exception as exc:  # noqa: BLE001 - a call that blew up may still have landed
            log.exception("provider %s raised on message %s", self.provider.name, jobs[0].id)
            return [UnknownOutcome("error", f"provider call raised {exc!r}"[:500])]

    def _outcome(self, job: Job, answer: Answer) -> Outcome:
        if isinstance(answer, Accepted):
            return Outcome(job, "sent", provider_id=answer.provider_id)
        if isinstance(answer, PermanentError):
            return Outcome(job, "failed", error_code=answer.code, detail=str(answer))
        if isinstance(answer, TransientError):
            return self._retry(job, answer)
        # UnknownOutcome, or an error the adapter did not classify: it may have landed.
        return Outcome(job, "unknown", error_code=answer.code, detail=str(answer))

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

    def _commit(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        with self._session_factory.begin() as session:
            outbox.record_outcomes(
                session, self.worker_id, self.provider.name, outcomes, self._clock()
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
            jobs = outbox.claim_stale(session, self.worker_id, now, self.lease, self.batch_size)
        found: list[tuple[Job, ProviderRecord | None]] = []
        for job in jobs:
            try:
                found.append((job, self.provider.lookup(job.sms())))
            except UnknownOutcome:
                continue
            except Exception:  # noqa: BLE001 - same as unsure: keep it unknown, try later
                log.exception("lookup of message %s failed", job.id)
        if not found:
            return 0
        name = self.provider.name
        with self._session_factory.begin() as session:
            return sum(
                outbox.settle_lookup(session, self.worker_id, name, job, record, now)
                for job, record in found
            )


__all__ = ["Answer", "Dispatcher", "Job", "Outcome"]
