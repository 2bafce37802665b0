"""Trigger-to-provider-call latency: single custom events at a steady rate.

A producer records EVENTS_PER_SECOND custom events (each its own transaction, as an API
call would) against an active automation whose one step sends an SMS, while a real
`sendline worker` process runs. Latency is from the event's commit to the sandbox
carrier accepting the message. Target (issue 4): p99 < 1 s at 500 events/s.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, func, select

from bench.bench_engine import prepare
from bench.common import print_table, scratch_postgres
from sendline.engine.actions import Actions
from sendline.engine.automations import Automations
from sendline.store.db import create_engine_for, session_factory
from sendline.store.engine_models import SandboxMessage
from sendline.store.models import Contact

RATE = float(os.environ.get("BENCH_EVENTS_PER_SECOND", "500"))
SECONDS = float(os.environ.get("BENCH_EVENTS_SECONDS", "10"))
TARGET_P99 = 1.0
ON_EVENT = """
name: Shipped
trigger: {type: event, name: shipped}
reentry: always
steps:
  - {type: send_sms, body: "Order %EVENT.SEQ% has shipped"}
"""


def _produce(engine: Engine, account_id: int, contacts: list[int]) -> dict[int, float]:
    factory = session_factory(engine)
    sent: dict[int, float] = {}
    rng = random.Random(5)
    count = int(RATE * SECONDS)
    started = time.perf_counter()
    for seq in range(count):
        delay = started + seq / RATE - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        with factory.begin() as session:
            Actions(session, account_id).record_event(rng.choice(contacts), "shipped", {"seq": seq})
        sent[seq] = time.time()
    achieved = count / (time.perf_counter() - started)
    print(f"   {count} events at {achieved:,.0f}/s (asked {RATE:,.0f}/s)")
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
        contacts = list(session.scalars(select(Contact.id)))
    env = {**os.environ, "SENDLINE_DATABASE_URL": url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "sendline.cli", "worker"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(1.0)  # the worker's start-up is not part of any event's latency
        sent = _produce(engine, account_id, contacts)
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
    rows = []
    with tempfile.TemporaryDirectory(prefix="sendline-bench-") as workdir:
        rows.append(measure("SQLite, 1 worker", f"sqlite:///{Path(workdir) / 'bench.db'}"))
    scratch = scratch_postgres()
    if scratch is not None:
        url, drop = scratch
        try:
            rows.append(measure("PostgreSQL, 1 worker", url))
        finally:
            drop()
    print_table(["database", "messages", "p50 ms", "p99 ms", "max ms", "p99 < 1 s"], rows)
