"""Shared helpers for benchmarks: timing best-of-N and a table printer."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


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
