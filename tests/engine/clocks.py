"""A clock for the tests that must not wait: it moves only when told to (or when the
code under test sleeps on it), so waits and due times can be asserted exactly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta


class FakeClock:
    """One time for everything that reads it: a datetime for the dispatcher and the
    sandbox (`clock()`), epoch seconds for the rate limiter (`seconds`), and a sleep
    that moves it instead of waiting (the pacer's `PaceClock`)."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept = 0.0
        self.on_sleep: Callable[[], object] | None = None  # what happens meanwhile

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
