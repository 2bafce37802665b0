"""Shared rate limits: GCRA on the `rate_limits` table.

Every sender number has a carrier-imposed rate (messages per second, counted in
segments), and a burst above it gets messages filtered or the number flagged. The limit
must hold across every worker on every machine, so its state is one row per key in the
database, changed by one atomic `UPDATE ... RETURNING` (PostgreSQL, SQLite >= 3.35).

GCRA keeps a single number per key, the theoretical arrival time (`tat`): when the next
unit may go. Taking `cost` units at rate r moves it by cost/r, and up to `burst` units
may go ahead of it. Time is the database's clock, not the worker's: workers on several
machines with skewed clocks would each believe they own a different slice of the rate.
A caller may pass its own `clock` instead (epoch seconds): the tests do, so that they
assert exact waits without waiting.

Two modes:
- `acquire` (a sender pacing itself through a short wait): always reserves the slot and
  returns how long to wait before using it. Sleeping that long holds the rate exactly,
  whatever the number of workers, with no retry storm.
- `try_acquire` / `try_acquire_all` (a carrier policing a sender, as the sandbox does;
  a worker deciding whether a message can go now or goes back to the queue, see
  `engine/pacing.py`): takes the slot only when it is free now, and otherwise says how
  long until it would be; nothing is reserved when refused, so a refused caller does
  not push the others back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Float, bindparam, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from sendline.errors import InvalidInput
from sendline.store.engine_models import RateLimit

# Epoch seconds. Every function takes one as `clock`; None, the default, is the
# database's own clock, the one every worker on every machine shares.
Clock = Callable[[], float]


def acquire(
    session_factory: sessionmaker[Session],
    key: str,
    cost: float,
    rate_per_second: float,
    burst: int = 1,
    *,
    clock: Clock | None = None,
) -> float:
    """Reserve `cost` units on `key`; return the seconds to wait before using them."""
    interval = _interval(rate_per_second, burst)
    increment = cost * interval
    with session_factory.begin() as session:
        row = _advance(session, key, increment, clock)
        if row is None:
            _create(session, key)
            row = _advance(session, key, increment, clock)
        assert row is not None
    new_tat, now = row
    start = new_tat - increment  # when this reservation's first unit may go
    return max(0.0, start - now - (burst - 1) * interval)


def try_acquire(
    session_factory: sessionmaker[Session],
    key: str,
    cost: float,
    rate_per_second: float,
    burst: int = 1,
    *,
    clock: Clock | None = None,
) -> float:
    """Take `cost` units on `key` if they are free now (returns 0.0); else the seconds
    until they would be (nothing taken)."""
    return try_acquire_all(session_factory, [(key, rate_per_second)], cost, burst, clock=clock)


def try_acquire_all(
    session_factory: sessionmaker[Session],
    limits: Sequence[tuple[str, float]],
    cost: float,
    burst: int = 1,
    *,
    clock: Clock | None = None,
) -> float:
    """`try_acquire` on several (key, rate) limits at once: all taken (0.0) or none
    (the longest wait). A message paced by its sender and its account must not spend
    the sender's slot when the account refuses it."""
    tolerances = {key: (burst - 1) * _interval(rate, burst) for key, rate in limits}
    with session_factory.begin() as session:
        for key in sorted(tolerances):  # one lock order: two callers cannot deadlock
            _create(session, key)
        # The row locks (SQLite: the write lock BEGIN IMMEDIATE took) make the reads and
        # the writes below one step for every other caller.
        rows = session.execute(
            select(RateLimit.key, RateLimit.tat, _now(session, clock))
            .where(RateLimit.key.in_(sorted(tolerances)))
            .order_by(RateLimit.key)
            .with_for_update()
        ).all()
        starts = {key: max(float(tat), float(now)) for key, tat, now in rows}
        now = float(rows[0][2])
        wait = max(starts[key] - now - tolerances[key] for key in starts)
        if wait > 0:
            return wait
        for key, rate in limits:
            session.execute(
                update(RateLimit)
                .where(RateLimit.key == key)
                .values(tat=starts[key] + cost * _interval(rate, burst))
                .execution_options(synchronize_session=False)
            )
    return 0.0


def reset(session_factory: sessionmaker[Session], key: str) -> None:
    """Forget a key's state (tests, or a sender number whose rate changed)."""
    with session_factory.begin() as session:
        session.execute(delete(RateLimit).where(RateLimit.key == key))


def _interval(rate_per_second: float, burst: int) -> float:
    if not rate_per_second > 0 or burst < 1:
        raise InvalidInput(
            f"a rate limit needs a positive rate and burst, not {rate_per_second}/{burst}"
        )
    return 1.0 / rate_per_second


def _now(session: Session, clock: Clock | None) -> ColumnElement[float]:
    """Epoch seconds on `clock`, or on the database's clock, fixed for the whole statement."""
    if clock is not None:
        return literal(clock(), Float)
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", func.statement_timestamp()).cast(Float)
    # julianday('now') has millisecond precision and is constant within a statement.
    return (func.julianday("now") - 2440587.5) * 86400.0


def _advance(
    session: Session, key: str, increment: float, clock: Clock | None
) -> tuple[float, float] | None:
    """tat = max(tat, now) + increment, atomically; (new tat, now), or None if no row."""
    greatest = func.greatest if session.get_bind().dialect.name == "postgresql" else func.max
    now = _now(session, clock)
    statement = (
        update(RateLimit)
        .where(RateLimit.key == key)
        .values(tat=greatest(RateLimit.tat, now) + bindparam("inc", increment, type_=Float))
        .returning(RateLimit.tat, now)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(statement).first()
    return None if row is None else (float(row[0]), float(row[1]))


def _create(session: Session, key: str) -> None:
    maker = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(maker(RateLimit).values(key=key, tat=0.0).on_conflict_do_nothing())
