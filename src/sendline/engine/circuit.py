"""A circuit breaker per provider: stop calling a provider that keeps failing, and send
its accounts' messages to the next provider of their chain meanwhile (issue 13).

Each provider (by name) is in one of three states:
- closed: calls go through. Every failure is remembered for `window` seconds; the
  `failures`-th within the window, with no answer from the provider between them,
  opens the circuit. An answer clears the count: a provider failing a message now and
  then (a carrier's random 503) is working, one that fails call after call is not.
- open: no call for `cooldown` seconds; the dispatcher routes the account's messages to
  the next provider of its chain, or keeps them waiting when every one is open.
- half-open: the cool-down is over; exactly one call (the probe) goes through, the
  others still skip the provider. The probe's success closes the circuit, its failure
  opens it for another cool-down. A probe whose result never came back (its worker
  stopped) is given up after a cool-down, and another one goes.

What counts is the caller's to say (the dispatcher: a transient refusal or a call that
timed out is a failure, any answer from the provider a success).

The state is the worker process's own, not shared through the database. That is
enough: each worker finds out a failing provider by itself, within `failures` calls,
so a down provider costs at most `failures` refused calls per worker per cool-down, and
a refused call is harmless (a transient refusal was never accepted: the message goes to
the next provider or back to the queue, never to two providers). Sharing the state
would put a database write on every failure and probe of every worker, to save those
few calls.

The clock is injected (seconds, any origin), so tests drive the state exactly.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

State = Literal["closed", "open", "half_open"]

FAILURES = 5  # transient failures ...
WINDOW = 30.0  # ... within this many seconds open a provider's circuit
COOLDOWN = 30.0  # seconds before a probe may go


@dataclass(slots=True)
class _Circuit:
    failures: deque[float] = field(default_factory=deque)
    opened_at: float | None = None  # None: closed
    probe_at: float | None = None  # when the probe in flight was let through


class CircuitBreaker:
    """The circuits of every provider this worker calls; safe to share between threads."""

    def __init__(
        self,
        failures: int = FAILURES,
        window: float = WINDOW,
        cooldown: float = COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or window <= 0 or cooldown <= 0:
            raise ValueError("a circuit needs failures >= 1 and a positive window and cooldown")
        self.failures = failures
        self.window = window
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._circuits: dict[str, _Circuit] = {}

    def allow(self, name: str) -> bool:
        """Whether a call to `name` may go now. In half-open, True once: the caller makes
        the probe call and reports it (`succeeded` / `failed`)."""
        with self._lock:
            circuit = self._circuits.get(name)
            if circuit is None or circuit.opened_at is None:
                return True
            now = self._clock()
            if now - circuit.opened_at < self.cooldown:
                return False
            if circuit.probe_at is not None and now - circuit.probe_at < self.cooldown:
                return False  # a probe is out: the others wait for its answer
            circuit.probe_at = now
            return True

    def succeeded(self, name: str) -> None:
        """A call to `name` got an answer. Clears a closed circuit's failures and closes
        a half-open one; a late answer to a call made before the circuit opened changes
        nothing while it cools down."""
        with self._lock:
            circuit = self._circuits.get(name)
            if circuit is None:
                return
            if circuit.opened_at is None:
                circuit.failures.clear()
                return
            if self._clock() - circuit.opened_at >= self.cooldown:
                self._circuits[name] = _Circuit()

    def failed(self, name: str) -> None:
        """A call to `name` failed: counted while closed, reopens a half-open circuit."""
        with self._lock:
            circuit = self._circuits.setdefault(name, _Circuit())
            now = self._clock()
            if circuit.opened_at is not None:
                if now - circuit.opened_at >= self.cooldown:  # the probe (or after it)
                    circuit.opened_at, circuit.probe_at = now, None
                return  # a late failure of a call made before it opened: already open
            circuit.failures.append(now)
            while circuit.failures and now - circuit.failures[0] >= self.window:
                circuit.failures.popleft()
            if len(circuit.failures) >= self.failures:
                circuit.failures.clear()
                circuit.opened_at = now

    def state(self, name: str) -> State:
        with self._lock:
            circuit = self._circuits.get(name)
            if circuit is None or circuit.opened_at is None:
                return "closed"
            return "open" if self._clock() - circuit.opened_at < self.cooldown else "half_open"

    def retry_in(self, name: str) -> float:
        """Seconds until a call to `name` may be let through again (0: it may now)."""
        with self._lock:
            circuit = self._circuits.get(name)
            if circuit is None or circuit.opened_at is None:
                return 0.0
            now = self._clock()
            reopens = circuit.opened_at + self.cooldown
            if circuit.probe_at is not None:
                reopens = max(reopens, circuit.probe_at + self.cooldown)
            return max(0.0, reopens - now)
