"""The REST API under load: `POST /api/v1/events` and `GET /api/v1/messages`.

On SQLite (the embedded default), an account with an active automation that every
`shipped` event starts (`reentry: always`), 10,000 opted-in contacts and an API key
(`bench/api_seed.py`), served by `sendline serve --no-worker` in its own process (the
product's uvicorn call and `create_app`), and beside it, in the same run and with the
same uvicorn call, a bare ASGI endpoint that only parses the same JSON and answers 202
(`bench/api_bare.py`). Load comes from other processes on loopback
(`bench/api_servers.py`): `wrk` when installed, else `bench.api_load` processes.

- saturation: events/s (2xx answers; each request records the event and writes the
  run it starts) over the bare endpoint's requests/s, best of `--rounds` alternating
  rounds of `--events-seconds` each. Target >= 0.30;
- latency at half the events' saturation rate, open loop (constant arrival rate, each
  request timed from when it was due, so queueing shows): p50 / p99. Target p99 < 100 ms;
- `GET /api/v1/messages?limit=100` with `--messages-rows` message rows (default a
  million): sequential requests, each chain of pages followed `PAGES_DEEP` deep through
  `next_cursor`: p50 / p99. Target p99 < 50 ms. Skipped, saying so, while the route is
  not in the served OpenAPI schema.

`python -m bench api [--events-seconds S] [--messages-rows N] [--rounds R]
[--database sqlite|postgresql] [--worker]`; tiny sizes (`--events-seconds 1
--messages-rows 10000 --rounds 1`) are the smoke test's. `python -m bench.api_profile`
breaks one events request down.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

import httpx
from sqlalchemy import func, select

from bench.api_seed import Seeded, seed_account, seed_messages
from bench.api_servers import EVENTS_PATH, HOST, Load, Server, generator_name, open_loop, saturate
from bench.common import on_database, print_table
from sendline.store.db import create_engine_for
from sendline.store.engine_models import AutomationRun

CONTACTS = 10_000
TARGET_RATIO, TARGET_P99, TARGET_LIST_P99 = 0.30, 0.100, 0.050
MESSAGES_PATH = "/api/v1/messages"
# Keep-alive connections of the saturation runs: 8 keeps the server busy without
# queueing much; 32 is more clients than its thread pool's database connections (15).
PAGE, PAGES_DEEP = 100, 5
CONNECTIONS = (8, 32)
# The list's requests stop after this long (a schema without the right index takes
# seconds a page over a million rows; the figure is clear after a few dozen).
LIST_BUDGET = 120.0


def options(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench api")
    parser.add_argument("--events-seconds", type=float, default=10.0)
    parser.add_argument("--messages-rows", type=int, default=1_000_000)
    parser.add_argument("--messages-requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--worker", action="store_true", help="serve with its embedded worker (default: off)"
    )
    return parser.parse_args(list(argv))


def run(argv: Sequence[str] = ()) -> None:
    args = options(argv)
    on_database(args.database, lambda url, workdir: _measure(url, workdir, args))


def _measure(url: str, workdir: str, args: argparse.Namespace) -> None:
    seeded = seed_account(url, CONTACTS)
    app = Server.sendline(url, workdir, worker=args.worker)
    try:
        _events(app, seeded, workdir, args)
        _messages(app, seeded, args)
    finally:
        app.close()


def _events(app: Server, seeded: Seeded, workdir: str, args: argparse.Namespace) -> None:
    bare = Server.bare(seeded.url, workdir)
    measured: dict[tuple[str, int], list[Load]] = {}
    try:
        for _ in range(args.rounds):  # alternating: the machine's load moves both alike
            for connections in CONNECTIONS:
                for name, server in (("bare", bare), ("events", app)):
                    load = saturate(
                        server, seeded.key, seeded.contacts, args.events_seconds, connections
                    )
                    measured.setdefault((name, connections), []).append(load)
    finally:
        bare.close()
    best = {what: max(loads, key=lambda load: load.rate) for what, loads in measured.items()}
    floor = max((best["bare", c] for c in CONNECTIONS), key=lambda load: load.rate)
    events = max((best["events", c] for c in CONNECTIONS), key=lambda load: load.rate)
    latency = open_loop(app, seeded.key, seeded.contacts, args.events_seconds, events.rate / 2)
    runs = _runs(seeded.url)
    events_loads = [
        load for (name, _), loads in measured.items() if name == "events" for load in loads
    ]
    accepted = sum(load.answered - load.bad for load in [*events_loads, latency])
    print(
        f"   {_KINDS[args.database]}, {CONTACTS:,} contacts; sendline serve "
        f"{'with its worker' if args.worker else '--no-worker'} beside a bare ASGI "
        f"endpoint (same uvicorn call); load: {generator_name()}; best of {args.rounds} "
        f"alternating rounds of {args.events_seconds:g} s each; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    ratio = events.rate / floor.rate
    rows = [
        _saturation_row(f"bare ASGI, parse JSON, 202 ({c} conns)", best["bare", c], floor)
        for c in CONNECTIONS
    ] + [
        _saturation_row(f"POST {EVENTS_PATH} ({c} conns)", best["events", c], floor)
        for c in CONNECTIONS
    ]
    print_table(
        [
            "endpoint",
            "req/s",
            "server us/req",
            "non-2xx",
            "server cores",
            "load gen cores",
            "of bare",
        ],
        rows,
    )
    print(
        f"   events at saturation / bare at saturation: {ratio:.2f} (target >= "
        f"{TARGET_RATIO:.2f}: {_met(ratio >= TARGET_RATIO)}); server CPU per request, bare / "
        f"events: {floor.server_us / events.server_us:.2f}"
    )
    _latency_table(latency, events.rate / 2)
    # Every accepted event started its run (the wrk warm-ups' events started some more).
    print(f"   {runs:,} automation runs started for {accepted:,} events accepted and counted")
    if runs < accepted:
        raise RuntimeError(f"{accepted} events accepted but only {runs} runs started")


_KINDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _saturation_row(name: str, load: Load, floor: Load) -> list[str]:
    return [
        name,
        f"{load.rate:,.0f}",
        f"{load.server_us:,.0f}",
        f"{load.bad:,}",
        f"{load.server_cores:.2f}",
        f"{load.generator_cores:.2f}",
        f"{load.rate / floor.rate:.2f}",
    ]


def _latency_table(load: Load, asked: float) -> None:
    p50, p99, worst = _percentiles(load.latencies)
    print(
        f"   open loop at half the events' saturation rate ({asked:,.0f}/s asked, "
        f"{load.rate:,.0f}/s answered 2xx, {load.bad:,} non-2xx, load gen "
        f"{load.generator_cores:.2f} cores)"
    )
    print_table(
        ["endpoint", "requests", "p50 ms", "p99 ms", "max ms", "target"],
        [
            [
                "POST /api/v1/events",
                f"{len(load.latencies):,}",
                f"{p50 * 1000:,.1f}",
                f"{p99 * 1000:,.1f}",
                f"{worst * 1000:,.1f}",
                f"p99 < {TARGET_P99 * 1000:.0f} ms: {_met(p99 < TARGET_P99)}",
            ]
        ],
    )


def _messages(app: Server, seeded: Seeded, args: argparse.Namespace) -> None:
    base = f"http://{HOST}:{app.port}"
    paths = httpx.get(f"{base}/openapi.json", timeout=30).json()["paths"]
    if "get" not in paths.get(MESSAGES_PATH, {}):
        print(f"   GET {MESSAGES_PATH}: route missing (not in the served schema): skipped")
        return
    started = time.perf_counter()
    seed_messages(seeded, args.messages_rows)
    seeded_in = time.perf_counter() - started
    latencies = _page_latencies(base, seeded.key, args.messages_requests)
    p50, p99, worst = _percentiles(latencies)
    print(
        f"   {args.messages_rows:,} message rows (seeded in {seeded_in:.1f} s), sequential "
        f"requests, pages 1 to {PAGES_DEEP} through next_cursor, one keep-alive client"
    )
    print_table(
        ["endpoint", "requests", "p50 ms", "p99 ms", "max ms", "target"],
        [
            [
                f"GET {MESSAGES_PATH}?limit={PAGE}",
                f"{len(latencies):,}",
                f"{p50 * 1000:,.1f}",
                f"{p99 * 1000:,.1f}",
                f"{worst * 1000:,.1f}",
                f"p99 < {TARGET_LIST_P99 * 1000:.0f} ms: {_met(p99 < TARGET_LIST_P99)}",
            ]
        ],
    )


def _page_latencies(base: str, key: str, requests: int) -> list[float]:
    """`requests` sequential page requests; each chain restarts after PAGES_DEEP pages."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        cursor: str | None = None
        depth = 0
        deadline = time.monotonic() + LIST_BUDGET
        for index in range(requests + 5):  # the first 5 warm the connection and caches
            if time.monotonic() > deadline and len(latencies) >= 10:
                break
            params = {"limit": str(PAGE)} | ({"cursor": cursor} if cursor else {})
            started = time.perf_counter()
            answer = client.get(MESSAGES_PATH, params=params)
            elapsed = time.perf_counter() - started
            if answer.status_code != 200:
                raise RuntimeError(f"GET {MESSAGES_PATH}: {answer.status_code} {answer.text}")
            page = answer.json()
            if len(page["data"]) != PAGE:
                raise RuntimeError(f"a page of {len(page['data'])} messages, asked {PAGE}")
            if index >= 5:
                latencies.append(elapsed)
            depth += 1
            cursor = page.get("next_cursor") if depth < PAGES_DEEP else None
            depth = depth if cursor else 0
    return sorted(latencies)


def _runs(url: str) -> int:
    engine = create_engine_for(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(AutomationRun)) or 0)
    finally:
        engine.dispose()


def _percentiles(sorted_values: list[float]) -> tuple[float, float, float]:
    if not sorted_values:
        return float("nan"), float("nan"), float("nan")
    count = len(sorted_values)
    return (
        sorted_values[count // 2],
        sorted_values[max(0, int(count * 0.99) - 1)],
        sorted_values[-1],
    )


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"
