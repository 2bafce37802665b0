"""The engine's own rows for a one-step blast, written with bare SQL: how close to the
engine benchmark's floor any engine with this schema can come.

The engine floor (`bench_engine.sql_floor`) writes three row versions per message: an
insert and two updates. What the issue asks of the product writes more per message:
the contact's run (enrolled by `start_bulk`, locked and moved on by the runner), the
message (inserted claimed, updated sent, updated delivered), and the sandbox carrier's
record (inserted, then marked reported), each table with its indexes. This benchmark
writes exactly those rows, in the engine's transactions and batches and with its
write techniques (executemany on SQLite; COPY and set-based updates on PostgreSQL),
with none of the product's logic: no rendering, no checks, no credits, no consent
screen. Its rate divided by the floor's is the ceiling of the engine's ratio.

`python -m bench rows` (BENCH_DATABASES, BENCH_ENGINE_CONTACTS as for `bench engine`).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bench_engine import BATCH, CONTACTS, prepare, sql_floor
from bench.common import DATABASES, print_table, scratch_postgres
from sendline.engine.triggers import start_bulk
from sendline.store.db import create_engine_for, session_factory

BODY = "Hi C1, spring sale: 20% off today at shop.example.com\nReply STOP to opt out"
MESSAGE_COLUMNS = (
    "account_id contact_id automation_id run_id step_id kind template idempotency_key "
    "to_e164 region reservation_id credits_free created_at updated_at status body encoding "
    "segments credits due_at claimed_by claimed_at attempts"
).split()
CARRIER_COLUMNS = (
    'provider_id message_ref "to" body segments status accepted_at report_due_at reported'
).split()


class _Bare:
    """One raw DBAPI cursor, and the few statements whose form differs by database."""

    def __init__(self, cursor: Any, postgres: bool) -> None:
        self.cursor, self.postgres = cursor, postgres
        self.mark = "%s" if postgres else "?"

    def ids(self, values: Sequence[Any]) -> Any:
        return list(values) if self.postgres else json.dumps(list(values))

    def among(self, column: str) -> str:
        if self.postgres:
            return f"{column} = ANY({self.mark})"
        return f"{column} IN (SELECT value FROM json_each({self.mark}))"

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        listed = ", ".join(columns)
        if self.postgres:
            with self.cursor.copy(f"COPY {table} ({listed}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join([self.mark] * len(columns))
        self.cursor.executemany(f"INSERT INTO {table} ({listed}) VALUES ({marks})", rows)

    def sent(self, pairs: list[tuple[int, str]], now: datetime) -> None:
        sets = "status = 'sent', updated_at = {0}, sent_at = {0}, provider = 'sandbox'"
        if self.postgres:
            self.cursor.execute(
                f"UPDATE messages SET {sets.format('%s')}, provider_id = v.p FROM "
                "unnest(%s::int[], %s::text[]) AS v(i, p) WHERE messages.id = v.i",
                (now, now, [m for m, _ in pairs], [p for _, p in pairs]),
            )
            return
        self.cursor.executemany(
            f"UPDATE messages SET {sets.format('?')}, provider_id = ? WHERE id = ?",
            [(now, now, p, m) for m, p in pairs],
        )

    def transaction(self, work: Callable[[], Any]) -> Any:
        self.cursor.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")
        result = work()
        self.cursor.execute("COMMIT")
        return result


def engine_rows(url: str, count: int) -> tuple[float, float]:
    """(the engine's rows with bare SQL, the floor), in messages/s, on a fresh database."""
    engine = create_engine_for(url)
    try:
        floor = sql_floor(engine, count)
        account_id, automation_id = prepare(engine, count)
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        with session_factory(engine).begin() as session:
            start_bulk(session, account_id, automation_id, now=started_at)
        raw = engine.raw_connection()
        try:
            postgres = engine.dialect.name == "postgresql"
            driver: Any = raw.driver_connection
            if postgres:
                driver.autocommit = True  # the transactions below are explicit
            else:
                driver.isolation_level = None
            # Timestamps as the engine binds them: aware on PostgreSQL, naive UTC text
            # on SQLite.
            now: Any = started_at if postgres else started_at.replace(tzinfo=None).isoformat(" ")
            with closing(driver.cursor()) as cursor:
                bare = _Bare(cursor, postgres)
                while _one_batch(bare, account_id, automation_id, now):
                    pass
                elapsed = time.perf_counter() - started
                cursor.execute("SELECT count(*) FROM messages WHERE status = 'delivered'")
                delivered = cursor.fetchone()[0]
        finally:
            raw.close()
        if delivered != count:  # the rows must be the engine's whole work, not part of it
            raise RuntimeError(f"{delivered} messages delivered, expected {count}")
        return count / elapsed, floor
    finally:
        engine.dispose()


def _one_batch(bare: _Bare, account_id: int, automation_id: int, now: Any) -> bool:
    """The runner's, the carrier's, the outcomes' and the receipts' transactions."""
    runs = bare.transaction(lambda: _advance_runs(bare, account_id, automation_id, now))
    if not runs:
        return False
    pairs = [(message_id, f"SM{message_id:032x}") for message_id, _ in runs]
    carrier = [
        (p, m, phone, BODY, 1, "sent", now, now, False)
        for (m, p), (_, phone) in zip(pairs, runs, strict=True)
    ]
    bare.transaction(lambda: bare.insert("sandbox_messages", CARRIER_COLUMNS, carrier))
    bare.transaction(lambda: bare.sent(pairs, now))
    bare.transaction(lambda: _receipts(bare, now))
    return True


def _advance_runs(bare: _Bare, account_id: int, automation_id: int, now: Any) -> list[Any]:
    """Lock a batch of due runs, queue each one's message claimed, complete the runs;
    returns (message id, phone) per message."""
    m, cursor = bare.mark, bare.cursor
    lock = " FOR UPDATE OF r SKIP LOCKED" if bare.postgres else ""
    cursor.execute(
        "SELECT r.id, r.contact_id FROM automation_runs r JOIN automations a ON a.id = "
        f"r.automation_id WHERE r.status = 'active' AND r.due_at <= {m} AND a.status = "
        f"'active' ORDER BY r.due_at LIMIT {BATCH}{lock}",
        (now,),
    )
    runs = cursor.fetchall()
    if not runs:
        return []
    cursor.execute(
        f"SELECT id, phone_e164 FROM contacts WHERE {bare.among('id')}",
        (bare.ids([c for _, c in runs]),),
    )
    phones = dict(cursor.fetchall())
    cursor.execute("SELECT coalesce(max(id), 0) FROM messages")
    first = cursor.fetchone()[0] + 1  # one writer at a time here: ids in advance
    rows = [
        (account_id, contact, automation_id, run, "s1", "marketing", "template", f"run:{run}:0")
        + (phones[contact], "US", None, 0, now, now, "sending", BODY, "GSM-7", 1, 1, now)
        + ("bench", now, 1)
        for run, contact in runs
    ]
    bare.insert(
        "messages", ["id", *MESSAGE_COLUMNS], [(first + i, *row) for i, row in enumerate(rows)]
    )
    cursor.execute(
        "UPDATE automation_runs SET status = 'completed', step_id = NULL, steps_done = 1, "
        f"due_at = NULL, updated_at = {m} WHERE {bare.among('id')}",
        (now, bare.ids([run for run, _ in runs])),
    )
    return [(first + i, phones[contact]) for i, (_, contact) in enumerate(runs)]


def _receipts(bare: _Bare, now: Any) -> None:
    m, cursor = bare.mark, bare.cursor
    cursor.execute(
        "SELECT id, provider_id FROM sandbox_messages WHERE reported = false AND "
        f"report_due_at <= {m} ORDER BY report_due_at LIMIT {BATCH}",
        (now,),
    )
    due = cursor.fetchall()
    cursor.execute(
        f"UPDATE messages SET status = 'delivered', updated_at = {m}, delivered_at = {m} "
        f"WHERE {bare.among('provider_id')} AND status || '' = 'sent'",
        (now, now, bare.ids([p for _, p in due])),
    )
    cursor.execute(
        "UPDATE sandbox_messages SET status = 'delivered', reported = true "
        f"WHERE {bare.among('id')}",
        (bare.ids([i for i, _ in due]),),
    )


def run() -> None:
    rows = []
    if "sqlite" in DATABASES:
        with tempfile.TemporaryDirectory(prefix="sendline-bench-") as workdir:
            rows.append(
                ("SQLite", *engine_rows(f"sqlite:///{Path(workdir) / 'rows.db'}", CONTACTS))
            )
    scratch = scratch_postgres() if "postgresql" in DATABASES else None
    if scratch is not None:
        url, drop = scratch
        try:
            rows.append(("PostgreSQL", *engine_rows(url, CONTACTS)))
        finally:
            drop()
    print(f"   the engine's rows for a one-step blast over {CONTACTS:,} contacts, bare SQL")
    print_table(
        ["database", "msgs/s", "floor msgs/s", "ratio (the engine's ceiling)"],
        [(db, f"{rate:,.0f}", f"{floor:,.0f}", f"{rate / floor:.2f}") for db, rate, floor in rows],
    )
