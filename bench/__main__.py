"""Run every benchmark module `bench/bench_*.py` (or those named on the command line).

Each module exposes `run() -> None` and prints its figures beside the floor it
measured in the same run: this machine is shared and noisy, so a ratio to a floor
taken moments earlier is the figure that means something.

Options after the names go to the one benchmark named, when its `run` takes them
(`python -m bench api --events-seconds 2`).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def main(argv: list[str]) -> int:
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    first_option = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    argv, options = argv[:first_option], argv[first_option:]
    wanted = [a if a.startswith("bench_") else f"bench_{a}" for a in argv]
    if options and len(wanted) != 1:
        print("options go to one benchmark: name exactly one", file=sys.stderr)
        return 2
    for name in wanted:
        if name not in names:
            print(f"unknown benchmark {name!r}; have: {', '.join(names)}", file=sys.stderr)
            return 2
    for name in wanted or names:
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        if options:
            module.run(options)
        else:
            module.run()
        print(f"   ({time.perf_counter() - started:.1f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
