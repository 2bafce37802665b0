"""Shared helpers for benchmarks: timing best-of-N and a table printer."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path


def best_rate(work: Callable[[], int], repeat: int = 5) -> float:
    """Items per second of `work` (which returns how many items it did), best of `repeat`.

    Best-of rather than mean: on a shared machine noise only ever slows a run down, so
    the fastest run is the closest to the code's own cost.
    """
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        count = work()
        elapsed = time.perf_counter() - started
        best = max(best, count / elapsed)
    return best


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print(
            "   "
            + "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            print("   " + "  ".join("-" * w for w in widths))


# Which databases the engine benchmarks run on: BENCH_DATABASES=sqlite,postgresql.
DATABASES = frozenset(os.environ.get("BENCH_DATABASES", "sqlite,postgresql").split(","))

PG_ADMIN_URL = os.environ.get("PG_TEST_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def scratch_postgres(prefix: str = "sendline_bench") -> tuple[str, Callable[[], None]] | None:
    """A fresh PostgreSQL database and the function that drops it; None when unreachable."""
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        print(f"   PostgreSQL unreachable ({str(exc.orig).strip()[:80]}): skipped")
        admin.dispose()
        return None
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


def on_database(database: str, measure: Callable[[str, str], None]) -> None:
    """`measure(url, workdir)` on a scratch database of the kind named (`sqlite` or
    `postgresql`) in a scratch folder, both removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="sendline-bench-") as workdir:
        if database == "sqlite":
            measure(f"sqlite:///{Path(workdir) / 'bench.db'}", workdir)
            return
        scratch = scratch_postgres()
        if scratch is None:
            return
        url, drop = scratch
        try:
            measure(url, workdir)
        finally:
            drop()


def on_each_database(measure: Callable[[str, str], list[str]]) -> list[list[str]]:
    """`measure(kind, url)` on a scratch SQLite file and a scratch PostgreSQL database
    (those of BENCH_DATABASES that can be had), each removed afterwards: its rows."""
    rows = []
    if "sqlite" in DATABASES:
        with tempfile.TemporaryDirectory(prefix="sendline-bench-") as workdir:
            rows.append(measure("SQLite", f"sqlite:///{Path(workdir) / 'bench.db'}"))
    scratch = scratch_postgres() if "postgresql" in DATABASES else None
    if scratch is not None:
        url, drop = scratch
        try:
            rows.append(measure("PostgreSQL", url))
        finally:
            drop()
    return rows
