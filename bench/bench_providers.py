"""Dispatch through the Twilio adapter (the official SDK) to a fake Twilio API on loopback.

BENCH_PROVIDER_MESSAGES messages (default 20,000), a one-step blast, one worker on
SQLite with 50 calls in flight (SENDLINE_PROVIDER_CONCURRENCY), in one run:
- the fake answering after 100 ms: messages/s from the blast's start until the fake had
  the last one, against Little's law (50 in flight / 0.1 s = 500/s); target >= 0.80;
- the fake answering at once: the same, against a bare HTTP client (`requests`, one
  session per thread, what the SDK itself uses) posting the same requests to the same
  fake with the same 50 threads; target >= 0.60;
- the worker's CPU microseconds per message (its start included) and peak RSS.
The fake runs in a process of its own (`python -m tests.fakes.twilio_api`), so its CPU
is not the sender's; it also counts any message it got twice (there must be none).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench.bench_engine import prepare
from bench.common import print_table
from sendline.engine.triggers import start_bulk
from sendline.store.db import create_engine_for, session_factory

MESSAGES = int(os.environ.get("BENCH_PROVIDER_MESSAGES", "20000"))
CONCURRENCY = 50
LATENCY = 0.1
TARGET_LITTLE, TARGET_BARE = 0.80, 0.60
FROM = "+14155550100"


class Fake:
    """The fake Twilio API in its own process, for one measurement."""

    def __init__(self, latency: float) -> None:
        args = ["--latency", str(latency), "--no-callbacks"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.twilio_api", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url, self.sid, self.token = self.process.stdout.readline().split()

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/_fake/stats", timeout=10) as answer:
            return dict(json.load(answer))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def through_sendline(latency: float) -> dict[str, float]:
    """The blast through a real worker; timed until the fake had every message."""
    fake = Fake(latency)
    try:
        with tempfile.TemporaryDirectory(prefix="sendline-bench-") as workdir:
            url = f"sqlite:///{Path(workdir) / 'bench.db'}"
            engine = create_engine_for(url)
            try:
                return _blast(engine, url, fake)
            finally:
                engine.dispose()
    finally:
        fake.close()


def _blast(engine: Any, url: str, fake: Fake) -> dict[str, float]:
    account_id, automation_id = prepare(engine, MESSAGES)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker = subprocess.Popen(
        [sys.executable, "-m", "bench.providers_worker", url, fake.url, fake.sid, fake.token]
        + [str(CONCURRENCY)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    if worker.stdout.readline().strip() != "ready":
        raise RuntimeError(f"bench worker exited with {worker.wait()} before it was ready")
    started = time.perf_counter()
    with session_factory(engine).begin() as session:
        start_bulk(session, account_id, automation_id, now=datetime.now(UTC))
    while (stats := fake.stats())["messages"] < MESSAGES and worker.poll() is None:
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    if worker.wait() != 0:
        raise RuntimeError(f"bench worker exited with {worker.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = fake.stats()
    if stats["messages"] != MESSAGES or stats["duplicates"]:
        raise RuntimeError(f"the fake has {stats}, expected {MESSAGES} messages, none twice")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"rate": MESSAGES / elapsed, "cpu_us": cpu / MESSAGES * 1e6, "rss": after.ru_maxrss}


def bare_client() -> float:
    """The same create requests from 50 threads with `requests`, nothing else: msgs/s."""
    fake = Fake(0.0)
    try:
        endpoint = f"{fake.url}/2010-04-01/Accounts/{fake.sid}/Messages.json"
        share, errors = MESSAGES // CONCURRENCY, []

        def post(thread: int) -> None:
            with requests.Session() as session:
                session.auth = (fake.sid, fake.token)
                for index in range(share):
                    to = f"+1415{thread:03d}{index:04d}"
                    form = {"To": to, "From": FROM, "Body": "Hi, spring sale: 20% off today"}
                    if session.post(endpoint, data=form, timeout=10).status_code != 201:
                        errors.append(to)

        threads = [threading.Thread(target=post, args=(t,)) for t in range(CONCURRENCY)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise RuntimeError(f"the bare client got {len(errors)} refusals")
        return share * CONCURRENCY / elapsed
    finally:
        fake.close()


def run() -> None:
    slow = through_sendline(LATENCY)
    little = CONCURRENCY / LATENCY
    floor = bare_client()
    fast = through_sendline(0.0)
    rows = [
        _row("fake answers in 100 ms", slow, little, "Little's law", TARGET_LITTLE),
        _row("fake answers at once", fast, floor, "bare client", TARGET_BARE),
    ]
    print(
        f"   {MESSAGES:,} messages through the Twilio adapter (SDK) to a fake Twilio on "
        f"loopback, 1 worker (SQLite), {CONCURRENCY} calls in flight"
    )
    print_table(
        ["run", "msgs/s", "CPU us/msg", "peak RSS MB", "against", "of msgs/s", "ratio", "target"],
        rows,
    )


def _row(
    name: str, figures: dict[str, float], limit: float, against: str, target: float
) -> list[str]:
    ratio = figures["rate"] / limit
    return [
        name,
        f"{figures['rate']:,.0f}",
        f"{figures['cpu_us']:,.0f}",
        f"{figures['rss'] / 1024:,.0f}",
        against,
        f"{limit:,.0f}",
        f"{ratio:.2f}",
        f">= {target:.2f}: {'met' if ratio >= target else 'NOT met'}",
    ]
