"""Work run in child processes by the concurrency tests.

Kept apart from the test modules so a child imports only Sendline, not pytest: the
processes start from a fork server that has already imported this module.
"""

from __future__ import annotations

import multiprocessing
import random
from typing import Any

from sendline.errors import InsufficientCredits
from sendline.store.credits import Credits
from sendline.store.db import create_engine_for, session_factory
from sendline.store.monthly import grant_monthly


def context() -> Any:
    """A fork-server context whose children start with this module already imported."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def run_all(target: Any, args: list[tuple[Any, ...]]) -> list[Any]:
    """Start one process per args tuple, all released at once; return their results."""
    ctx = context()
    barrier = ctx.Barrier(len(args))
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_run, args=(target, barrier, results, index, *a))
        for index, a in enumerate(args)
    ]
    for process in processes:
        process.start()
    collected = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    failures = [v for v in collected.values() if isinstance(v, BaseException)]
    if failures:
        raise failures[0]
    return [collected[index] for index in range(len(args))]


def _run(target: Any, barrier: Any, results: Any, index: int, *args: Any) -> None:
    try:
        barrier.wait(timeout=60)
        results.put((index, target(*args)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent test
        results.put((index, RuntimeError(f"child {index}: {exc!r}")))


def grant(url: str, period: str) -> int:
    engine = create_engine_for(url)
    try:
        with session_factory(engine).begin() as session:
            return sum(r.granted for r in grant_monthly(session, period))
    finally:
        engine.dispose()


def spend(url: str, account_id: int, seed: int) -> dict[str, int]:
    """Reserve 1-3 credits at a time until the account is dry; charge most, release some."""
    rng = random.Random(seed)
    engine = create_engine_for(url)
    factory = session_factory(engine)
    done = {"charged": 0, "released": 0, "refused": 0}
    try:
        while True:
            amount = rng.randint(1, 3)
            try:
                with factory.begin() as session:
                    reservation = Credits(session, account_id).reserve(amount)
            except InsufficientCredits:
                done["refused"] += 1
                if amount == 1:
                    return done
                continue
            with factory.begin() as session:
                if rng.random() < 0.2:
                    Credits(session, account_id).release(reservation.id)
                    done["released"] += amount
                else:
                    Credits(session, account_id).charge(reservation.id)
                    done["charged"] += amount
    finally:
        engine.dispose()
