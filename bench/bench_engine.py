"""The engine end to end: a one-step blast automation over N contacts until every message
is accepted by the sandbox provider (rate limits off), beside a bare-SQL floor.

For SQLite (1 worker) and PostgreSQL (1 and 2 workers): messages/s from the bulk start
(the workers already running, idle, as a service is when a marketer starts a blast)
until the sandbox accepted the last message (by its own acceptance time), and until the
workers found no work left (the last receipts, two seconds later, and the idle check
included); worker CPU microseconds per message (receipts, and the workers' own start,
included); peak worker RSS.
The floor, measured in the same run on the same database: the same number of message
rows inserted, claimed (in batches, through an index on status and due time, FOR UPDATE
SKIP LOCKED on PostgreSQL) and updated twice with bare SQL, in one process, written the
fastest plain way each database offers (`sql_floor`). Target (issue 4): end to end >=
30% of the floor.
BENCH_ENGINE_CONTACTS sets N (default 100,000).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, text

from bench.common import DATABASES, print_table, scratch_postgres
from sendline.engine.automations import Automations
from sendline.engine.triggers import start_bulk
from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.accounts import Accounts
from sendline.store.credits import Credits
from sendline.store.db import create_engine_for, session_factory, upgrade
from sendline.store.models import ConsentEvent, Contact

CONTACTS = int(os.environ.get("BENCH_ENGINE_CONTACTS", "100000"))
TARGET_RATIO = 0.30
# The workers' batch (`sendline worker --batch-size 500`; the default, 200, favours a
# quiet queue's latency) and the floor's claim size.
BATCH = 500
BLAST = """
name: Blast
trigger: {type: bulk}
steps:
  - {type: send_sms, body: "Hi %FIRSTNAME|there%, spring sale: 20% off today at shop.example.com"}
"""
AREAS = ("201", "212", "305", "312", "415", "512", "617", "702", "808", "919")


def _contacts(account_id: int, count: int, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for index in range(count):
        area = AREAS[index % len(AREAS)]
        rest = index // len(AREAS)
        e164 = f"+1{area}{200 + rest // 10_000}{rest % 10_000:04d}"
        rows.append(
            {
                "account_id": account_id,
                "first_name": f"C{index}",
                "phone": e164,
                "phone_e164": e164,
                "phone_status": "ok",
                "phone_region": "US",
                "time_zone": "America/New_York",
                "fields": {},
                "sms_consent": "opted_in",
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


def prepare(engine: Engine, count: int) -> tuple[int, int]:
    """An account with credits, `count` opted-in contacts and an active blast automation."""
    upgrade(engine)
    now = datetime.now(UTC)
    with session_factory(engine).begin() as session:
        account = Accounts(session).create(
            "bench",
            product_line="marketing",
            tier="enterprise",
            last_purchase_on=date(2024, 1, 1),
            sms_addon=True,
            quiet_start=0,
            quiet_end=24 * 60,
            frequency_cap=100,
        )
        Credits(session, account.id).purchase(count * 2)
        rows = _contacts(account.id, count, now)
        for start in range(0, count, 5000):
            session.execute(insert(Contact), rows[start : start + 5000])
        ids = session.scalars(select(Contact.id).where(Contact.account_id == account.id)).all()
        consent = [
            {
                "account_id": account.id,
                "contact_id": cid,
                "kind": "opt_in",
                "method": "import",
                "source": "bench",
                "occurred_at": now,
                "recorded_at": now,
            }
            for cid in ids
        ]
        for start in range(0, count, 5000):
            session.execute(insert(ConsentEvent), consent[start : start + 5000])
        automations = Automations(session, account.id)
        saved = automations.create(BLAST)
        automations.activate(saved.automation.id)
        return account.id, saved.automation.id


def end_to_end(url: str, engine: Engine, workers: int, count: int) -> dict[str, float]:
    account_id, automation_id = prepare(engine, count)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The workers run before the blast starts, as `sendline worker` does.
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.engine_worker", url, f"bench-{i}", str(BATCH)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"bench worker exited with {process.wait()} before it was ready")
    started, started_at = time.perf_counter(), datetime.now(UTC)
    with session_factory(engine).begin() as session:
        start_bulk(session, account_id, automation_id, now=started_at)
    for process in processes:
        if process.wait() != 0:
            raise RuntimeError(f"bench worker exited with {process.returncode}")
    idle = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with engine.connect() as conn:
        accepted, last = conn.execute(
            select(func.count(), func.max(SandboxMessage.accepted_at))
        ).one()
    if accepted != count:
        raise RuntimeError(f"the sandbox accepted {accepted} messages, expected {count}")
    # The figure the issue asks for ends when the sandbox accepted the last message, by
    # the carrier's own clock (this machine's). The workers run on past it: the last
    # delivery receipts are due two seconds later (the sandbox's report delay), then
    # half a second of idling tells them the work is done. That tail is `idle_rate`.
    elapsed = last - started_at  # max() keeps the column's type: an aware datetime
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "rate": count / elapsed.total_seconds(),
        "idle_rate": count / idle,
        "cpu_us": cpu / count * 1e6,
        "rss_mb": after.ru_maxrss / 1024,
    }


def sql_floor(engine: Engine, count: int) -> float:
    """Bare SQL: insert `count` rows, claim them in batches, mark them sending then sent.

    The plainest fast way each database offers, the same ways the engine writes
    (`store/batch_writes.py`), so the ratio is the product's cost over the same work: the claim's
    index, as any queue has (without it each claim scans and sorts the whole table, and
    the floor measured that scan: it read 30,000/s on SQLite where this reads about
    100,000); the claim's update by id list; on SQLite executemany for the inserts and
    per-row updates; on PostgreSQL COPY and one `unnest` update."""
    postgres = engine.dialect.name == "postgresql"
    _floor_table(engine, postgres)
    now = datetime.now(UTC).replace(tzinfo=None)
    body = "Hi C1, spring sale: 20% off today at shop.example.com\nReply STOP to opt out"
    rows = [(i, "queued", body, now) for i in range(count)]
    started = time.perf_counter()
    with engine.begin() as conn:
        with closing(conn.connection.dbapi_connection.cursor()) as cursor:  # type: ignore[union-attr]
            if postgres:
                columns = "bench_floor (contact_id, status, body, due_at)"
                with cursor.copy(f"COPY {columns} FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                insert = "INSERT INTO bench_floor (contact_id, status, body, due_at) VALUES "
                cursor.executemany(insert + "(?, ?, ?, ?)", rows)
    while _floor_batch(engine, postgres, now):
        pass
    return count / (time.perf_counter() - started)


def _floor_table(engine: Engine, postgres: bool) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_floor"))
        key = "SERIAL" if postgres else "INTEGER"
        conn.execute(
            text(
                f"CREATE TABLE bench_floor (id {key} PRIMARY KEY, contact_id INTEGER, "
                "status VARCHAR(10), body TEXT, due_at TIMESTAMP, provider_id VARCHAR(64))"
            )
        )
        conn.execute(text("CREATE INDEX ix_bench_floor_due ON bench_floor (status, due_at)"))


def _floor_batch(engine: Engine, postgres: bool, now: datetime) -> bool:
    """Claim one batch (marked sending, committed), then mark it sent; False when none."""
    claim = (
        "SELECT id FROM bench_floor WHERE status = 'queued' AND due_at <= :now "
        f"ORDER BY due_at LIMIT {BATCH}" + (" FOR UPDATE SKIP LOCKED" if postgres else "")
    )
    among = "= ANY(:ids)" if postgres else "IN (SELECT value FROM json_each(:ids))"
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text(claim), {"now": now})]
        if not ids:
            return False
        listed = ids if postgres else json.dumps(ids)
        conn.execute(
            text(f"UPDATE bench_floor SET status = 'sending' WHERE id {among}"), {"ids": listed}
        )
    provider_ids = [f"SM{i:032x}" for i in ids]
    with engine.begin() as conn:
        if postgres:
            conn.execute(
                text(
                    "UPDATE bench_floor SET status = 'sent', provider_id = v.p FROM "
                    "unnest(CAST(:ids AS int[]), CAST(:ps AS text[])) AS v(i, p) "
                    "WHERE bench_floor.id = v.i"
                ),
                {"ids": ids, "ps": provider_ids},
            )
        else:
            conn.execute(
                text("UPDATE bench_floor SET status = 'sent', provider_id = :p WHERE id = :i"),
                [{"i": i, "p": p} for i, p in zip(ids, provider_ids, strict=True)],
            )
    return True


def _one(kind: str, workers: int, url: str, count: int) -> list[Any]:
    engine = create_engine_for(url)
    try:
        floor = sql_floor(engine, count)
        figures = end_to_end(url, engine, workers, count)
    finally:
        engine.dispose()
    ratio = figures["rate"] / floor
    return [
        f"{kind}, {workers} worker{'s' if workers > 1 else ''}",
        f"{figures['rate']:,.0f}",
        f"{figures['idle_rate']:,.0f}",
        f"{figures['cpu_us']:,.0f}",
        f"{figures['rss_mb']:,.0f}",
        f"{floor:,.0f}",
        f"{ratio:.2f}",
        "yes" if ratio >= TARGET_RATIO else "NO",
    ]


def run() -> None:
    rows = []
    if "sqlite" in DATABASES:
        with tempfile.TemporaryDirectory(prefix="sendline-bench-") as workdir:
            url = f"sqlite:///{Path(workdir) / 'bench.db'}"
            rows.append(_one("SQLite", 1, url, CONTACTS))
    for workers in (1, 2) if "postgresql" in DATABASES else ():
        scratch = scratch_postgres()
        if scratch is None:
            break
        url, drop = scratch
        try:
            rows.append(_one("PostgreSQL", workers, url, CONTACTS))
        finally:
            drop()
    print(
        f"   one-step blast over {CONTACTS:,} contacts, until the sandbox accepted all "
        "(to idle: until the workers saw no work left, receipts included)"
    )
    print_table(
        [
            "database",
            "msgs/s",
            "to idle",
            "CPU us/msg",
            "peak RSS MB",
            "floor msgs/s",
            "ratio",
            f">= {TARGET_RATIO:.2f}",
        ],
        rows,
    )
