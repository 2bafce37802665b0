"""The worker loop: automation runs, then due messages, then housekeeping, forever.

The messages its runs queue due now are claimed for it as they are written (see the
dispatcher) and sent in the same pass, before it polls the queue for others' messages.

Everything a worker does is claimed from rows, so any number of workers can run against
one PostgreSQL (on SQLite, one node: `sendline worker` refuses a second). A running
worker renews its heartbeat (engine/heartbeat.py), so the claims of one that died are
reconciled within seconds, not after the claim lease.

The loop is a plain poll with a short idle sleep: latency from trigger to provider call
is a few poll intervals at most, and an idle worker costs one cheap indexed query per
table per interval.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.date_triggers import scan_date_triggers
from sendline.engine.dispatcher import Dispatcher
from sendline.engine.heartbeat import Heartbeat
from sendline.engine.receipts import receipt_applier
from sendline.engine.runner import Runner
from sendline.engine.tablestats import refresh_statistics
from sendline.engine.webhooks import WebhookDeliverer
from sendline.providers.base import OneProvider, Provider, ProviderDirectory
from sendline.sms.links import ShortenerList

log = logging.getLogger("sendline.worker")

# CPython's cyclic collector runs after every 700 net allocations of container objects
# by default. A blast allocates millions of short-lived ones (rows, jobs, outcomes) that
# reference counting frees at once, yet they set the collector off about once per 50
# messages, and every 100th run walks all the process's long-lived objects (modules,
# SQLAlchemy's caches): about a tenth of a worker's CPU in a blast (A/B, `bench engine`
# on SQLite), more in a process with a larger heap. A higher first threshold keeps
# collections for real garbage; freezing what exists once the worker starts keeps those
# objects out of every later full collection.
GC_FIRST_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Tune the process's garbage collector for the worker loop: called by the processes
    that run one (`sendline worker`, `sendline serve`), once everything is imported. Not
    by `Worker` itself: a library object must not change its host process's collector."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_FIRST_THRESHOLD, second, third)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class WorkerOptions:
    worker_id: str
    idle_sleep: float = 0.05  # seconds between polls when there is nothing to do
    reconcile_every: float = 5.0  # stale `sending` and `unknown` messages
    date_scan_every: float = 60.0  # date-based triggers fire at a minute's precision
    statistics_every: float = 2.0  # PostgreSQL: re-analyze the queue tables when stale
    batch_size: int = 200
    # How long a claimed message may go without an outcome before another worker's
    # reconciliation looks it up at the provider (half of it: this worker stops calling).
    # SENDLINE_CLAIM_LEASE. A worker that died is found out sooner, by its heartbeat:
    # renewed every `heartbeat_every` seconds, taken for dead after `heartbeat_misses`
    # missed beats (engine/heartbeat.py).
    lease: timedelta = timedelta(seconds=60)
    heartbeat_every: float = 1.0
    heartbeat_misses: int = 5
    # Run batches per pass, between which messages are sent: a blast queueing 100,000
    # messages must not hold back an unrelated event's message (or its own first sends).
    run_batches_per_step: int = 2
    # The operator's public-shortener list (SENDLINE_SHORTENERS_FILE) on top of the
    # packaged one; None is the packaged list alone. R10 holds a message the moment its
    # run reaches the send step, so the worker must see the same list the CLI checks.
    shorteners: ShortenerList | None = None
    # Pacing (SENDLINE_SENDER_MPS, SENDLINE_ACCOUNT_MPS), in segments per second.
    sender_mps: float | None = None
    account_mps: float | None = None
    # Calls in flight at once to a provider without windows (an HTTP carrier), per
    # worker (SENDLINE_PROVIDER_CONCURRENCY). The sandbox's windows are not affected.
    provider_concurrency: int = 32
    # R17: seconds after which a message whose outcome stayed unknown ends failed
    # ("unconfirmed"), its credits released (SENDLINE_UNCONFIRMED_AFTER).
    unconfirmed_after: float = 6 * 3600.0
    # Outbound webhooks: delivered on a thread of their own (engine/webhooks.py), with
    # the keys that open the endpoints' signing secrets (SENDLINE_SECRET_KEY).
    webhooks: bool = True
    secret_keys: tuple[str, ...] = ()
    webhooks_allow_private: bool = False  # SENDLINE_WEBHOOKS_ALLOW_HTTP


class Worker:
    """`providers`: the directory that gives each account its chain of providers
    (bootstrap's `Runtime.providers()`), or one provider for every account (wrapped in
    `OneProvider`: the sandbox, the tests)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        providers: Provider | ProviderDirectory,
        options: WorkerOptions,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if isinstance(providers, Provider):
            providers = OneProvider(providers)
        self.directory: ProviderDirectory = providers
        self.session_factory = session_factory
        self.options = options
        self.clock = clock
        self.runner = Runner(
            session_factory,
            worker_id=options.worker_id,
            batch_size=options.batch_size,
            shorteners=options.shorteners,
            claim_sends=True,
        )
        self.dispatcher = Dispatcher(
            session_factory,
            providers,
            worker_id=options.worker_id,
            batch_size=options.batch_size,
            lease=options.lease,
            sender_mps=options.sender_mps,
            account_mps=options.account_mps,
            concurrency=options.provider_concurrency,
            unconfirmed_after=timedelta(seconds=options.unconfirmed_after),
        )
        # Receipts a provider is polled for (the sandbox's) reach the engine through the
        # same hook a pushed one (a webhook) will: none to poll is the default.
        self.apply_receipts = receipt_applier(session_factory)
        self.heartbeat = Heartbeat(
            session_factory,
            options.worker_id,
            every=options.heartbeat_every,
            misses=options.heartbeat_misses,
            clock=clock,
        )
        self.dispatcher.alive = self.heartbeat.fresh
        self.webhooks = WebhookDeliverer(
            session_factory,
            options.secret_keys,
            options.worker_id,
            clock=clock,
            allow_private=options.webhooks_allow_private,
        )
        self._stop = threading.Event()
        # -inf: a worker that starts reconciles at once (what a dead one left), however
        # long the machine has been up (monotonic time counts from boot).
        self._last_reconcile = -math.inf
        self._last_date_scan = 0.0
        self._last_statistics = 0.0
        self.idle_since: float | None = None  # monotonic time the last busy pass ended

    def step(self) -> int:
        """One pass over every kind of due work; returns how many items were handled."""
        done = self._step_runs()
        # The messages the runs just queued due now are already ours: sent (or, when
        # stopping, put back in the queue) before anything else.
        jobs, claimed_at = self.runner.take_claimed()
        if claimed_at is not None:
            done += self.dispatcher.dispatch_claimed(jobs, claimed_at)
        if self._stop.is_set():
            return done
        return done + self._step_sends()

    def _step_runs(self) -> int:
        """Due automation runs (a few batches), planner statistics, date triggers."""
        monotonic = time.monotonic()
        # Statistics before the batches: a blast's first batches are the ones planned blind.
        if monotonic - self._last_statistics >= self.options.statistics_every:
            self._last_statistics = monotonic
            refresh_statistics(self.session_factory)
        done = self.runner.run_due(max_batches=self.options.run_batches_per_step)
        if monotonic - self._last_date_scan >= self.options.date_scan_every:
            self._last_date_scan = monotonic
            with self.session_factory.begin() as session:
                done += scan_date_triggers(session, now=self.clock())
        return done

    def _step_sends(self) -> int:
        """One batch of due messages, polled receipts, reconciliation when due."""
        done = self.dispatcher.dispatch_due()
        done += self._poll_receipts()
        monotonic = time.monotonic()
        if monotonic - self._last_reconcile >= self.options.reconcile_every:
            settled = self.dispatcher.reconcile()
            # A full batch: a dead worker's claims may be waiting behind it (a blast's
            # worker holds a thousand). Due again next pass, not `reconcile_every` later.
            backlog = settled >= self.options.batch_size
            self._last_reconcile = -math.inf if backlog else monotonic
            done += settled
        return done

    def _poll_receipts(self) -> int:
        """Every provider's receipts (those pushed to a webhook have none to poll); one
        provider failing to answer does not keep the others' from the engine."""
        done = 0
        for provider in self.directory.all():
            try:
                done += provider.poll_receipts(self.clock(), self.apply_receipts)
            except Exception:  # noqa: BLE001 - logged; polled again next pass
                log.exception("polling the receipts of %s failed", provider.name)
        return done

    def run(self) -> None:
        """Work until `stop()`; then return claimed-but-unsent messages to the queue and
        expire the heartbeat, so whatever claim is left is reconciled at once."""
        self.heartbeat.start()
        if self.options.webhooks:
            self.webhooks.start()
        log.info("worker %s started", self.options.worker_id)
        try:
            while not self._stop.is_set():
                try:
                    busy = self.step()
                except Exception:  # noqa: BLE001 - a bad row must not kill the worker
                    log.exception("worker pass failed; retrying")
                    busy = 0
                    self._stop.wait(1.0)
                if busy:
                    self.idle_since = None
                else:
                    self.idle_since = self.idle_since or time.monotonic()
                    self._stop.wait(self.options.idle_sleep)
        finally:
            self.webhooks.stop()
            self.webhooks.close()
            released = self.release_claims()
            self.dispatcher.close()
            self.heartbeat.stop()
            log.info("worker %s stopped (%d claims released)", self.options.worker_id, released)

    def release_claims(self) -> int:
        """Put every message claimed for this worker and not sent back in the queue: the
        dispatcher's, and the runner's that a failed pass left before the hand-off."""
        return self.dispatcher.release_claims(self.runner.take_claimed()[0])

    def stop(self) -> None:
        """Ask the loop to stop: the provider calls in flight finish, the rest waits."""
        self._stop.set()
        self.dispatcher.request_stop()
        self.webhooks.request_stop()
