"""Shared rate limits (GCRA in the database): the configured rate holds within a few
percent across concurrent workers, each with its own connections."""

from __future__ import annotations

import itertools
import random
import statistics
import threading
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.dispatcher import Dispatcher
from sendline.errors import InvalidInput
from sendline.providers.sandbox import SandboxProvider
from sendline.store.db import create_engine_for
from sendline.store.db import session_factory as make_session_factory
from sendline.store.engine_models import Message
from sendline.store.ratelimit import acquire, reset, try_acquire
from tests.engine.factories import make_world, queue_message

SECONDS = 3.0
# How far ahead of its slot a thread books the next one. A real worker sleeps the whole
# wait; here the slack keeps a stalled thread (CI shares the machine) from leaving a slot
# unused, which would measure the machine, not the limiter.
LOOKAHEAD = 0.3


def _hammer(url: str, key: str, rate: float, workers: int, cost: int = 1) -> list[float]:
    """`workers` threads, each with its own engine (like separate processes), pacing
    themselves on `key` for SECONDS; returns the time of each grant.

    Each thread books its next slot LOOKAHEAD before the last one is due, so the
    limiter's queue never runs dry on a loaded machine (it only ever bounds the rate
    from above): what is left to measure is the spacing the limiter grants.
    """
    used: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(workers)
    engines = [create_engine_for(url) for _ in range(workers)]

    def work(factory: sessionmaker[Session]) -> None:
        acquire(factory, f"warm-up {threading.get_ident()}", 1, rate)  # connect first
        start.wait()
        end = time.monotonic() + SECONDS
        while True:
            wait = acquire(factory, key, cost, rate)
            slot = time.monotonic() + wait
            if slot >= end:
                return
            with lock:
                # When the limiter lets it go, not when this thread happens to wake
                # up: a loaded machine oversleeps, and that is not the limiter's doing.
                used.append(slot)
            time.sleep(max(0.0, wait - LOOKAHEAD))

    threads = [threading.Thread(target=work, args=(make_session_factory(e),)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    return sorted(used)


@pytest.mark.parametrize(("rate", "workers"), [(50.0, 8), (20.0, 4)])
def test_it_handles_concurrent_workers_at_the_configured_rate(
    database_url: str, rate: float, workers: int
) -> None:
    used = _hammer(database_url, "sender:+14155550000", rate, workers)
    # The workers asked about as fast as the rate: below this the run measures the
    # machine (a CI neighbour stalling every thread at once), not the limiter.
    assert len(used) >= rate * SECONDS * 0.75, len(used)
    observed = (len(used) - 1) / (used[-1] - used[0])
    assert observed <= rate * 1.05, (observed, len(used))  # never faster than the rate
    # While there is demand the grants come exactly one interval apart: the typical gap
    # is the configured one (a stall that empties the queue makes a longer gap, which
    # the median ignores and the mean above would count against the limiter).
    spacing = statistics.median(b - a for a, b in itertools.pairwise(used))
    assert abs(1 / spacing - rate) <= rate * 0.05, (1 / spacing, len(used))
    # No second carries a burst either. The times are read on this side of a round
    # trip, so a loaded machine blurs them: a run beside a benchmark on this 2-core
    # machine once saw 59 grants in a second at 50/s. The two checks above hold the
    # rate itself to 5%; this one only catches a limiter that lets bursts through.
    busiest = max(sum(1 for t in used if s <= t < s + 1.0) for s in used)
    assert busiest <= rate * 1.25 + 1


def test_it_handles_segments_as_the_cost(session_factory: sessionmaker[Session]) -> None:
    assert acquire(session_factory, "k", 3, 1.0) == 0.0  # a free sender goes at once
    wait = acquire(session_factory, "k", 1, 1.0)
    assert 2.5 < wait <= 3.0  # the 3 segments before it took 3 s of the rate
    reset(session_factory, "k")
    assert acquire(session_factory, "k", 1, 1.0) == 0.0


def test_it_handles_a_burst(session_factory: sessionmaker[Session]) -> None:
    waits = [acquire(session_factory, "burst", 1, 1.0, burst=5) for _ in range(7)]
    assert waits[:5] == [0.0] * 5
    assert 0.5 < waits[5] <= 1.0 and 1.5 < waits[6] <= 2.0


def test_it_handles_policing_without_reserving(session_factory: sessionmaker[Session]) -> None:
    assert try_acquire(session_factory, "carrier", 1, 0.5) == 0.0
    first = try_acquire(session_factory, "carrier", 1, 0.5)
    assert 1.0 < first <= 2.0
    second = try_acquire(session_factory, "carrier", 1, 0.5)
    assert second <= first  # a refusal takes nothing: it does not push the next one back
    time.sleep(second + 0.05)
    assert try_acquire(session_factory, "carrier", 1, 0.5) == 0.0


def test_it_handles_a_bad_rate(session_factory: sessionmaker[Session]) -> None:
    for rate, burst in ((0.0, 1), (-1.0, 1), (5.0, 0)):
        with pytest.raises(InvalidInput):
            acquire(session_factory, "bad", 1, rate, burst)


@pytest.mark.parametrize("limit", ["sender", "account"])
def test_it_handles_a_dispatcher_paced_by_its_rates(
    session: Session, session_factory: sessionmaker[Session], limit: str
) -> None:
    """Paced at the carrier's own rate, the dispatcher is never refused (20429)."""
    world = make_world(session)
    for _ in range(11):
        queue_message(session, world.account, world.contact, segments=2)
    sandbox = SandboxProvider(session_factory, mps=20.0)
    dispatcher = Dispatcher(
        session_factory,
        sandbox,
        worker_id="w1",
        rng=random.Random(1),
        sender_mps=20.0 if limit == "sender" else None,
        account_mps=20.0 if limit == "account" else None,
    )
    started = time.monotonic()
    sent = 0
    while sent < 11:  # what a batch did not sleep for came back due at its slot
        dispatcher.dispatch_due()
        sent = len(session.scalars(select(Message.id).where(Message.status == "sent")).all())
        session.commit()
        assert time.monotonic() - started < 30
    elapsed = time.monotonic() - started
    assert elapsed >= 10 * 2 / 20.0 * 0.95  # 22 segments at 20 per second
    attempts = set(session.scalars(select(Message.attempts)))
    session.commit()
    assert attempts == {1}  # each went once: the carrier refused none
