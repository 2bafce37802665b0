"""Trigger-to-provider-call latency: single custom events at a steady rate.

BENCH_EVENT_PRODUCERS processes (default 4, as API processes would) record
BENCH_EVENTS_PER_SECOND custom events between them (each its own transaction) against an
active automation whose one step sends an SMS, while a real `sendline worker` process
runs. Latency is from the event's commit to the sandbox
carrier accepting the message. Target (issue 4): p99 < 1 s at 500 events/s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy import Engine, func, select

from bench.bench_engine import prepare
from bench.common import on_each_database, print_table
from sendline.engine.automations import Automations
from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.credits import Credits
from sendline.store.db import create_engine_for, session_factory

RATE = float(os.environ.get("BENCH_EVENTS_PER_SECOND", "500"))
PRODUCERS = int(os.environ.get("BENCH_EVENT_PRODUCERS", "4"))
SECONDS = float(os.environ.get("BENCH_EVENTS_SECONDS", "10"))
TARGET_P99 = 1.0
ON_EVENT = """
name: Shipped
trigger: {type: event, name: shipped}
reentry: always
steps:
  - {type: send_sms, body: "Order %EVENT.SEQ% has shipped"}
"""


def _produce(url: str, account_id: int) -> dict[int, float]:
    """PRODUCERS processes share the rate, as several API processes would: one Python
    process recording events one transaction at a time is itself the bottleneck well
    before 500/s, and that is not the latency this measures."""
    start = time.time() + 1.0  # every producer connected before the first event
    producers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.latency_producer",
                url,
                str(account_id),
                str(index),
                str(PRODUCERS),
                str(RATE),
                str(SECONDS),
                str(start),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(PRODUCERS)
    ]
    sent: dict[int, float] = {}
    for producer in producers:
        out, _ = producer.communicate(timeout=SECONDS * 10 + 60)
        if producer.returncode != 0:
            raise RuntimeError(f"an event producer exited with {producer.returncode}")
        for seq, at in (line.split() for line in out.splitlines() if line):
            sent[int(seq)] = float(at)
    achieved = len(sent) / (max(sent.values()) - start)
    print(
        f"   {len(sent)} events at {achieved:,.0f}/s (asked {RATE:,.0f}/s, {PRODUCERS} producers)"
    )
    return sent


def _latencies(engine: Engine, sent: dict[int, float]) -> list[float]:
    deadline = time.monotonic() + 120
    with engine.connect() as conn:
        while conn.scalar(select(func.count()).select_from(SandboxMessage)) < len(sent):
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not send every message within 2 minutes")
            time.sleep(0.2)
            conn.rollback()
        rows = conn.execute(select(SandboxMessage.body, SandboxMessage.accepted_at)).all()
    return sorted(accepted.timestamp() - sent[int(body.split()[1])] for body, accepted in rows)


def measure(kind: str, url: str) -> list[object]:
    engine = create_engine_for(url)
    account_id, _ = prepare(engine, 2000)
    with session_factory(engine).begin() as session:
        automations = Automations(session, account_id)
        saved = automations.create(ON_EVENT)
        automations.activate(saved.automation.id)
        # prepare() bought two credits a contact; every event here sends a message.
        Credits(session, account_id).purchase(int(RATE * SECONDS) * 2)
    env = {**os.environ, "SENDLINE_DATABASE_URL": url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "sendline.cli", "worker"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(1.0)  # the worker's start-up is not part of any event's latency
        sent = _produce(url, account_id)
        latencies = _latencies(engine, sent)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        engine.dispose()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return [
        kind,
        f"{len(latencies):,}",
        f"{p50 * 1000:,.0f}",
        f"{p99 * 1000:,.0f}",
        f"{latencies[-1] * 1000:,.0f}",
        "yes" if p99 < TARGET_P99 else "NO",
    ]


def run() -> None:
    rows = on_each_database(lambda kind, url: measure(f"{kind}, 1 worker", url))
    print_table(["database", "messages", "p50 ms", "p99 ms", "max ms", "p99 < 1 s"], rows)
