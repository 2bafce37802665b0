"""Shared rate limits (GCRA in the database): the configured rate holds exactly across
concurrent workers, each with its own connections. On a fake clock: every wait is
asserted exactly, and nothing sleeps."""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.dispatcher import Dispatcher
from sendline.errors import InvalidInput
from sendline.providers.sandbox import SandboxProvider
from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.db import create_engine_for
from sendline.store.db import session_factory as make_session_factory
from sendline.store.engine_models import Message
from sendline.store.ratelimit import acquire, reset, try_acquire
from tests.engine.clocks import FakeClock
from tests.engine.factories import NOW, make_world, queue_message

# Rates whose intervals are exact in binary (1/64 s, 1/16 s...), so that the waits the
# database adds up can be compared with ==.
RATES = [(64.0, 8), (16.0, 4)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def _hammer(
    url: str, key: str, rate: float, workers: int, each: int, clock: FakeClock
) -> list[float]:
    """`workers` threads, each with its own engine (like separate processes), asking
    for `each` slots on `key` at once, at one instant; returns every wait granted."""
    waits: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(workers)
    engines = [create_engine_for(url) for _ in range(workers)]

    def work(factory: sessionmaker[Session]) -> None:
        acquire(factory, f"warm-up {threading.get_ident()}", 1, rate, clock=clock.seconds)
        start.wait()
        mine = [acquire(factory, key, 1, rate, clock=clock.seconds) for _ in range(each)]
        with lock:
            waits.extend(mine)

    threads = [threading.Thread(target=work, args=(make_session_factory(e),)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    return sorted(waits)


@pytest.mark.parametrize(("rate", "workers"), RATES)
def test_it_handles_concurrent_workers_at_the_configured_rate(
    database_url: str, rate: float, workers: int, clock: FakeClock
) -> None:
    waits = _hammer(database_url, "sender:+14155550000", rate, workers, 10, clock)
    # Every slot granted once, one interval apart, none skipped: the rate, exactly,
    # however the workers' requests interleaved.
    assert waits == [slot / rate for slot in range(workers * 10)]


def test_it_handles_segments_as_the_cost(
    session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    assert acquire(session_factory, "k", 3, 1.0, clock=clock.seconds) == 0.0  # goes at once
    # The 3 segments before it took 3 s of the rate.
    assert acquire(session_factory, "k", 1, 1.0, clock=clock.seconds) == 3.0
    reset(session_factory, "k")
    assert acquire(session_factory, "k", 1, 1.0, clock=clock.seconds) == 0.0


def test_it_handles_a_burst(session_factory: sessionmaker[Session], clock: FakeClock) -> None:
    waits = [
        acquire(session_factory, "burst", 1, 1.0, burst=5, clock=clock.seconds) for _ in range(7)
    ]
    assert waits == [0.0] * 5 + [1.0, 2.0]
    clock.advance(7.0)  # all of them used: a full burst again
    waits = [
        acquire(session_factory, "burst", 1, 1.0, burst=5, clock=clock.seconds) for _ in range(6)
    ]
    assert waits == [0.0] * 5 + [1.0]


def test_it_handles_policing_without_reserving(
    session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    assert try_acquire(session_factory, "carrier", 1, 0.5, clock=clock.seconds) == 0.0
    assert try_acquire(session_factory, "carrier", 1, 0.5, clock=clock.seconds) == 2.0
    # A refusal takes nothing: it does not push the next one back.
    assert try_acquire(session_factory, "carrier", 1, 0.5, clock=clock.seconds) == 2.0
    clock.advance(1.5)
    assert try_acquire(session_factory, "carrier", 1, 0.5, clock=clock.seconds) == 0.5
    clock.advance(0.5)
    assert try_acquire(session_factory, "carrier", 1, 0.5, clock=clock.seconds) == 0.0


def test_it_handles_the_database_clock_by_default(session_factory: sessionmaker[Session]) -> None:
    """Without a clock, time is the database's: one slot a day, so the second request
    waits a day, less the moment between the two statements."""
    day = 86_400.0
    assert try_acquire(session_factory, "daily", 1, 1 / day) == 0.0
    assert day - 60 < try_acquire(session_factory, "daily", 1, 1 / day) <= day


def test_it_handles_a_bad_rate(session_factory: sessionmaker[Session]) -> None:
    for rate, burst in ((0.0, 1), (-1.0, 1), (5.0, 0)):
        with pytest.raises(InvalidInput):
            acquire(session_factory, "bad", 1, rate, burst)


@pytest.mark.parametrize("limit", ["sender", "account"])
def test_it_handles_a_dispatcher_paced_by_its_rates(
    session: Session, session_factory: sessionmaker[Session], limit: str, clock: FakeClock
) -> None:
    """Paced at the carrier's rate, the dispatcher hands messages over one interval
    apart, each once, and a carrier policing that rate would refuse none of them."""
    world = make_world(session)
    ids = [queue_message(session, world.account, world.contact, segments=2).id for _ in range(11)]
    dispatcher = Dispatcher(
        session_factory,
        SandboxProvider(session_factory, clock=clock),
        worker_id="w1",
        rng=random.Random(1),
        clock=clock,
        pace_clock=clock,
        sender_mps=16.0 if limit == "sender" else None,
        account_mps=16.0 if limit == "account" else None,
    )
    for _ in range(11):  # what a batch did not sleep for comes back due at its slot
        dispatcher.dispatch_due()
        due = session.scalars(select(Message.due_at).where(Message.status == "queued")).all()
        session.commit()
        if not due:
            break
        clock.advance((min(due) - clock()).total_seconds())
    handed = session.execute(
        select(SandboxMessage.message_ref, SandboxMessage.accepted_at).order_by(SandboxMessage.id)
    ).all()
    attempts = set(session.scalars(select(Message.attempts)))
    session.commit()
    assert sorted(ref for ref, _ in handed) == ids and attempts == {1}  # each once
    # 2 segments at 16 a second: one message every 1/8 s, from the first on.
    start = NOW.timestamp()
    assert [at.timestamp() - start for _, at in handed] == [k / 8 for k in range(11)]
    police = [
        try_acquire(session_factory, "carrier", 2, 16.0, clock=lambda at=at: at.timestamp())
        for _, at in handed
    ]
    assert police == [0.0] * 11
    assert clock.slept == 1.0  # a second of short waits slept, the rest put back
