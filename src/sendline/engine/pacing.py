"""Pacing a rate-limited sender without holding every other message up.

A worker sends its claimed batch in due order. If it slept for each message's slot, a
sender at 1 segment/s with 200 messages in the batch would keep the worker (and every
other account's messages, claimed behind that blast) waiting for over three minutes.
So a message whose slot is more than SHORT_WAIT away, or that comes after the batch has
already slept SLEEP_BUDGET, is not waited for: it goes back to the queue, due when its
slot should be free, and the next claims reach the messages due before it. Nothing is
reserved for it meanwhile (`try_acquire_all`), so a put-back message never holds a slot
it is not using; when its turn comes, it asks again.

Short waits are slept, with the slot reserved (`acquire`): that holds a fast sender's
rate exactly, whatever the number of workers, as a carrier expects.

Time is the database's clock and the sleeps are real ones, unless a `PaceClock` is
given (the tests: their clock moves when the pacer sleeps, so nothing waits).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.outbox import Job
from sendline.store import ratelimit

SHORT_WAIT = 0.25  # seconds: a wait this short is slept, not put back
SLEEP_BUDGET = 1.0  # seconds of such sleeps in one batch, after which waits are put back


class PaceClock(Protocol):
    """The pacer's time, when it is not the real one."""

    def seconds(self) -> float:
        """Now, in epoch seconds (the rate limiter's `clock`)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass (the pacer checks its stop event after)."""
        ...


class Pacer:
    """The sender's and the account's rates, for one worker's batches."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        stop: threading.Event,
        sender_mps: float | None,
        account_mps: float | None,
        clock: PaceClock | None = None,
    ) -> None:
        self._sessions = session_factory
        self._stop = stop
        self._clock = clock
        self._seconds = clock.seconds if clock is not None else None
        self.sender_mps = sender_mps
        self.account_mps = account_mps
        self._slept = 0.0
        # key -> when the next message put back may be due. Kept across batches: a
        # 10,000-message blast at 1/s is claimed 200 at a time, and each batch's
        # put-backs must line up after the last batch's, not on top of them (which
        # would bring them all back at once, to be put back again).
        self._put_back: dict[str, datetime] = {}

    def start_batch(self, now: datetime) -> None:
        self._slept = 0.0
        self._put_back = {key: at for key, at in self._put_back.items() if at > now}

    def limits(self, job: Job) -> list[tuple[str, float]]:
        limits = []
        if self.sender_mps:
            limits.append((f"sender:{job.sender or 'default'}", self.sender_mps))
        if self.account_mps:
            limits.append((f"account:{job.account_id}", self.account_mps))
        return limits

    def clear_to_send(self, job: Job, now: datetime) -> bool | datetime:
        """True: send it now, its slots are taken. A time: put it back, due then.
        False: the worker was stopped while waiting."""
        limits = self.limits(job)
        cost = max(1, job.segments)  # carriers count segments, not messages
        wait = ratelimit.try_acquire_all(self._sessions, limits, cost, clock=self._seconds)
        if wait <= 0:
            return True
        if wait > SHORT_WAIT or self._slept + wait > SLEEP_BUDGET:
            return self._due_again(limits, cost, wait, now)
        wait = max(
            ratelimit.acquire(self._sessions, key, cost, rate, clock=self._seconds)
            for key, rate in limits
        )
        self._slept += wait
        return wait <= 0 or not self._sleep(wait)

    def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early when the worker is stopped; True if it was."""
        if self._clock is None:
            return self._stop.wait(seconds)
        self._clock.sleep(seconds)
        return self._stop.is_set()

    def _due_again(
        self, limits: list[tuple[str, float]], cost: int, wait: float, now: datetime
    ) -> datetime:
        # Messages put back queue up behind each other at the rate, from the first one's
        # slot, so the next claims do not find them all due at once.
        due = now + timedelta(seconds=wait)
        for key, _rate in limits:
            due = max(due, self._put_back.get(key, due))
        for key, rate in limits:
            self._put_back[key] = due + timedelta(seconds=cost / rate)
        return due
