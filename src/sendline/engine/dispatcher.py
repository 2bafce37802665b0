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
one without windows declares 1 (the interface's default) and is called per message,
up to `concurrency` calls in flight at once (SENDLINE_PROVIDER_CONCURRENCY; the pacing
above still decides, in this thread, when each call may start).

Which provider: the account's chain from the `ProviderDirectory`, past the providers
whose circuit is open, with failover after a transient refusal (engine/provider_calls.py,
engine/circuit.py). The provider that answered is recorded on the message with its
outcome; reconciliation asks that one only (engine/reconciler.py).

A refusal saying the recipient opted out with the carrier (Twilio's 21610) is an opt-out
(R13): recorded as the contact's consent event, and the contact's other pending
messages are canceled, in the transaction that records the outcome.
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
from sendline.engine.circuit import CircuitBreaker
from sendline.engine.outbox import Job, Outcome
from sendline.engine.outcomes import BACKOFF_BASE, record_carrier_opt_outs, retry_outcome
from sendline.engine.pacing import PaceClock, Pacer
from sendline.engine.provider_calls import Answered, Calls
from sendline.engine.reconciler import Reconciler
from sendline.engine.zones import Zones, ringing_zones
from sendline.providers.base import (
    Accepted,
    Answer,
    OneProvider,
    PermanentError,
    Provider,
    ProviderDirectory,
    TransientError,
)
from sendline.sms.schedule import next_send_time
from sendline.store.batch_filter import among
from sendline.store.engine_models import Message
from sendline.store.models import Account, Contact

log = logging.getLogger(__name__)

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
NO_DESTINATION = "queued without a destination"
ALL_OPEN = "waiting: every provider of the account is failing (circuit open)"

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
    """One worker's sending loop body. Not shared between threads; one per process (its
    calls in flight run in a pool of its own, `close()` ends it)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        providers: Provider | ProviderDirectory,
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
        concurrency: int = 1,  # calls in flight to a provider without windows
        breaker: CircuitBreaker | None = None,  # None: one on `clock`
        unconfirmed_after: timedelta = timedelta(hours=6),
    ) -> None:
        self._session_factory = session_factory
        # A bare provider (the embedded default, the tests) serves every account.
        self.directory = OneProvider(providers) if isinstance(providers, Provider) else providers
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
        self.breaker = breaker or CircuitBreaker(clock=lambda: self._clock().timestamp())
        self.calls = Calls(self.directory, self.breaker, concurrency)
        self.reconciler = Reconciler(
            session_factory,
            self.directory,
            worker_id=worker_id,
            lease=lease,
            batch_size=batch_size,
            unconfirmed_after=unconfirmed_after,
            clock=clock,
        )
        self._lock = threading.Lock()
        self._unsent: dict[int, Job] = {}  # claimed, not yet handed to the provider
        # Whether this worker may still call the provider: its heartbeat's `fresh`, set
        # by the worker that runs one (a bare dispatcher relies on the lease alone).
        self.alive: Callable[[], bool] = lambda: True

    # -- control -------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop between messages (safe from a signal handler): the calls in flight
        finish, the rest of the batch is put back in the queue."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """End the pool of calls in flight (after the last dispatch)."""
        self.calls.close()

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
        # Paced: one message at a time; else slices of the largest window any provider
        # takes (the sandbox's 500: one exchange per slice, as before).
        size = 1 if self._pacer is not None else max(1, self.calls.window_size())
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
                if self._must_stop(claimed_at) or not self._send(window, claimed_at, pending):
                    break
                pending.extend(self._outcome(answered) for answered in self.calls.collect())
                if len(pending) >= COMMIT_EVERY or time.monotonic() - last_commit > COMMIT_INTERVAL:
                    self._commit(pending)
                    pending, last_commit = [], time.monotonic()
        finally:
            # Whatever stopped the loop, the calls in flight finish; the answers are kept.
            pending.extend(self._outcome(answered) for answered in self.calls.drain())
            self._commit(pending)

    def _send(self, window: Sequence[Job], claimed_at: datetime, pending: list[Outcome]) -> bool:
        """Route a slice of the batch and call its providers: windows in one exchange,
        the others one call per message (in the pool, up to `concurrency` at once).
        False when the worker must stop before every call started."""
        exchanges: dict[str, tuple[Provider, list[Job]]] = {}
        singles: list[tuple[Job, Provider]] = []
        waiting: list[Job] = []
        invalid: list[Job] = []
        windowed: dict[int, Provider] = {}  # account -> its provider with windows
        for job in window:
            if not (job.to and job.body):
                invalid.append(job)
                continue
            provider = windowed.get(job.account_id) or self.calls.route(job)
            if provider is None:
                waiting.append(job)
            elif provider.window_size > 1:
                windowed[job.account_id] = provider  # one exchange: one probe at most
                exchanges.setdefault(provider.name, (provider, []))[1].append(job)
            else:
                singles.append((job, provider))
        pending.extend(Outcome(j, "failed", detail=NO_DESTINATION) for j in self._take(invalid))
        pending.extend(self._wait(job) for job in self._take(waiting))
        for provider, group in exchanges.values():
            if taken := self._take(group):
                answers = self.calls.send_window(provider, taken)
                pending.extend(self._outcome(answered) for answered in answers)
        for job, provider in singles:
            if self.calls.pooled(provider):
                pending.extend(self._outcome(answered) for answered in self.calls.room())
            if self._must_stop(claimed_at):
                return False
            if not self._take([job]):
                continue
            if self.calls.pooled(provider):
                self.calls.submit(job, provider)
            else:
                pending.append(self._outcome(self.calls.send_one(job, provider)))
        return True

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
                outbox.record_outcomes(session, self.worker_id, None, later, now)
        gone = set(refused) | {outcome.job.id for outcome in later}
        with self._lock:
            for job_id in gone:
                self._unsent.pop(job_id, None)
        return {job.id for job in jobs} - gone

    def _outcome(self, answered: Answered) -> Outcome:
        job, answer, name = answered.job, answered.answer, answered.provider
        if answer is None:
            return self._wait(job)
        if isinstance(answer, Accepted):
            return Outcome(job, "sent", provider_id=answer.provider_id, provider=name)
        if isinstance(answer, PermanentError):
            return Outcome(
                job,
                "failed",
                error_code=answer.code,
                detail=str(answer),
                provider=name,
                opted_out=answer.opted_out,
            )
        if isinstance(answer, TransientError):
            return self._retry(job, answer)  # never accepted: routed again when due
        # UnknownOutcome, or an error the adapter did not classify: it may have landed,
        # so the message stays with this provider until reconciled (R17).
        return Outcome(job, "unknown", error_code=answer.code, detail=str(answer), provider=name)

    def _wait(self, job: Job) -> Outcome:
        """Every provider of the account's chain is open: back to the queue, due when
        one may take a probe (at the earliest), with the usual backoff and deadline."""
        waiting = TransientError("circuit_open", ALL_OPEN, retry_after=self.calls.retry_in(job))
        return self._retry(job, waiting)

    def _retry(self, job: Job, exc: TransientError) -> Outcome:
        return retry_outcome(job, exc, self._clock(), self._rng, self.retry_deadline)

    def _commit(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        now = self._clock()
        with self._session_factory.begin() as session:
            outbox.record_outcomes(session, self.worker_id, None, outcomes, now)
            opted_out = [outcome for outcome in outcomes if outcome.opted_out]
            if opted_out:
                record_carrier_opt_outs(session, opted_out, now)

    def reconcile(self, now: datetime | None = None) -> int:
        """Settle messages whose outcome is not known (engine/reconciler.py)."""
        return self.reconciler.reconcile(now)


__all__ = ["BACKOFF_BASE", "Answer", "Dispatcher", "Job", "Outcome"]
