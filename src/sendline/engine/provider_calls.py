"""The calls to the providers: which provider gets a message, failover, calls in flight.

Which provider: the first of the account's chain (`ProviderDirectory.chain`, failover
order) whose circuit lets calls through (engine/circuit.py). None when every one is
open: the message waits.

Failover: a provider that refuses a message transiently never accepted it, so the
message may go to the next provider of the chain whose circuit is closed, in the same
call. Any other answer (accepted, refused for good, or an outcome not known) ends it
there: a message whose outcome is unknown stays with its provider until reconciled, so
a message is handed to at most one provider, ever (R17). The answer says which
provider gave it; the dispatcher records that name on the message (`messages.provider`).

Calls in flight: a provider that takes one message per exchange (`window_size` 1, the
HTTP carriers, 50-500 ms a call) is called from a thread pool, up to `concurrency`
calls at once (SENDLINE_PROVIDER_CONCURRENCY): one call at a time would cap a worker at
a few messages a second. Threads, not asyncio: the adapters are the carriers' own sync
SDKs, and the calls spend their time waiting on sockets, with the GIL released. Nothing
is queued in the pool: the dispatcher submits a call only when one of the `concurrency`
slots is free, so every call submitted is in flight, and a stop finishes exactly those.
A provider with windows (the sandbox's 500) gets one exchange per window, in the
dispatcher's thread, as before.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sendline.engine.circuit import CircuitBreaker
from sendline.engine.outbox import Job
from sendline.providers.base import (
    Accepted,
    Answer,
    PermanentError,
    Provider,
    ProviderDirectory,
    ProviderError,
    TransientError,
    UnknownOutcome,
)

log = logging.getLogger(__name__)

# Seconds the dispatcher waits at most for a free slot before it looks again at whether
# it must stop (the calls in flight are finished either way).
SLOT_WAIT = 0.5


@dataclass(frozen=True, slots=True)
class Answered:
    """A message's call: the provider that answered last (None: no provider was called)
    and its answer (None: every provider of the account's chain is open)."""

    job: Job
    provider: str | None
    answer: Answer | None


def failed_call(exc: BaseException) -> UnknownOutcome:
    """A call that blew up with no ProviderError may still have landed (R17)."""
    return UnknownOutcome("error", f"provider call raised {exc!r}"[:500])


class Calls:
    """One dispatcher's way to the providers. Its pool is created at the first pooled
    call and lives until `close()`."""

    def __init__(
        self, directory: ProviderDirectory, breaker: CircuitBreaker, concurrency: int = 1
    ) -> None:
        self.directory = directory
        self.breaker = breaker
        self.concurrency = max(1, concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._flying: dict[Future[Answered], tuple[Job, Provider]] = {}
        # Calls that ended, in the order they did: O(1) per call to find, where waiting
        # on the set of futures in flight would cost the dispatcher O(concurrency).
        self._ended: queue.SimpleQueue[Future[Answered]] = queue.SimpleQueue()

    # -- routing -------------------------------------------------------------------

    def route(self, job: Job) -> Provider | None:
        """The provider this message goes to now (a half-open one's probe: this one)."""
        for provider in self.directory.chain(job.account_id):
            if self.breaker.allow(provider.name):
                return provider
        return None

    def retry_in(self, job: Job) -> float:
        """Seconds until a provider of the message's chain may take calls again."""
        waits = [self.breaker.retry_in(p.name) for p in self.directory.chain(job.account_id)]
        return min(waits, default=0.0)

    def pooled(self, provider: Provider) -> bool:
        return self.concurrency > 1 and provider.window_size <= 1

    def window_size(self) -> int:
        """The largest exchange any provider takes: the dispatcher's slice of a batch."""
        return max((p.window_size for p in self.directory.all()), default=1)

    # -- calling -------------------------------------------------------------------

    def send_one(self, job: Job, provider: Provider) -> Answered:
        """Call `provider`; on a transient refusal, the next open provider of the chain."""
        answered = self._attempt(job, provider)
        chain = list(self.directory.chain(job.account_id))
        rest = chain[chain.index(provider) + 1 :] if provider in chain else []
        for following in rest:
            if not isinstance(answered.answer, TransientError):
                break
            if self.breaker.allow(following.name):
                answered = self._attempt(job, following)
        return answered

    def send_window(self, provider: Provider, jobs: Sequence[Job]) -> list[Answered]:
        """One exchange carrying several messages (no failover inside a window: its
        transient refusals go back to the queue, routed again when due)."""
        if len(jobs) == 1:
            return [self.send_one(jobs[0], provider)]
        try:
            answers = provider.send_window([job.sms() for job in jobs])
        except Exception as exc:  # noqa: BLE001 - the window may have landed: unknown
            log.exception("provider %s failed on a window of %d", provider.name, len(jobs))
            answers = [failed_call(exc)] * len(jobs)
        self._report(provider.name, answers)
        return [
            Answered(job, provider.name, answer) for job, answer in zip(jobs, answers, strict=True)
        ]

    def _attempt(self, job: Job, provider: Provider) -> Answered:
        answer: Answer
        try:
            answer = provider.send(job.sms())
        except ProviderError as exc:
            answer = exc
        except Exception as exc:  # noqa: BLE001 - a call that blew up may still have landed
            log.exception("provider %s raised on message %s", provider.name, job.id)
            answer = failed_call(exc)
        self._report(provider.name, [answer])
        return Answered(job, provider.name, answer)

    def _report(self, name: str, answers: Sequence[Answer]) -> None:
        """An exchange counts as failed when the provider answered no message at all:
        a window with some refusals among its answers shows a working provider."""
        if answers and not any(isinstance(a, Accepted | PermanentError) for a in answers):
            self.breaker.failed(name)
        else:
            self.breaker.succeeded(name)

    # -- calls in flight -----------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._flying)

    def submit(self, job: Job, provider: Provider) -> None:
        """Start the message's call in the pool; the caller made room first (`room`)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="sendline-call")
        future = self._pool.submit(self.send_one, job, provider)
        self._flying[future] = (job, provider)
        future.add_done_callback(self._ended.put)

    def room(self) -> list[Answered]:
        """Wait until a slot is free; returns the calls that ended meanwhile."""
        answered = self.collect()
        while len(self._flying) >= self.concurrency:
            answered += self._collect(SLOT_WAIT)
        return answered

    def collect(self) -> list[Answered]:
        """The calls that have ended (without waiting)."""
        return self._collect(0)

    def drain(self) -> list[Answered]:
        """Wait for every call in flight to end: a stop finishes them (R17)."""
        answered: list[Answered] = []
        while self._flying:
            answered += self._collect(None)
        return answered

    def _collect(self, timeout: float | None) -> list[Answered]:
        """The calls that ended, waiting up to `timeout` for the first (0: not at all,
        None: as long as it takes)."""
        answered: list[Answered] = []
        wait = timeout != 0
        while self._flying:
            try:
                future = self._ended.get(timeout=timeout) if wait else self._ended.get_nowait()
            except queue.Empty:
                break
            wait = False  # the first one came: take the others that are there
            job, provider = self._flying.pop(future)
            exc = future.exception()
            answered.append(
                future.result() if exc is None else Answered(job, provider.name, failed_call(exc))
            )
        return answered

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
