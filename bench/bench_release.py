"""Releasing held messages: 10,000 held for want of credits, released in one
`sendline messages release --reason insufficient_credits` (engine.held.release, in
process) once credits are there, on SQLite and PostgreSQL. BENCH_RELEASE_MESSAGES sets
the count (default 10,000, the most one release takes)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from bench.bench_engine import prepare
from bench.common import on_each_database, print_table
from sendline.engine.held import release
from sendline.store.db import create_engine_for, session_factory
from sendline.store.engine_models import Message
from sendline.store.models import Account, Contact

MESSAGES = int(os.environ.get("BENCH_RELEASE_MESSAGES", "10000"))


def _held(engine: Engine, count: int) -> int:
    """An account with credits and `count` messages held for want of them earlier."""
    account_id, _ = prepare(engine, count)
    now = datetime.now(UTC)
    with session_factory(engine).begin() as session:
        rows = [
            {
                "account_id": account_id,
                "contact_id": contact.id,
                "kind": "marketing",
                "template": "Hi %FIRSTNAME|there%, spring sale at shop.example.com",
                "status": "held",
                "held_reason": "insufficient_credits",
                "detail": "the account has no credits left for this message",
                "to_e164": contact.phone_e164,
                "region": contact.phone_region,
                "segments": 0,
                "credits": 0,
                "created_at": now,
                "updated_at": now,
            }
            for contact in session.scalars(select(Contact).where(Contact.account_id == account_id))
        ]
        session.execute(insert(Message), rows)
    return account_id


def _one(kind: str, url: str) -> list[str]:
    engine = create_engine_for(url)
    try:
        account_id = _held(engine, MESSAGES)
        started = time.perf_counter()
        with session_factory(engine).begin() as session:
            account = session.get(Account, account_id)
            assert account is not None
            done = release(session, account, reason="insufficient_credits", now=datetime.now(UTC))
        elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    queued = sum(1 for item in done if item.status == "queued")
    return [kind, f"{len(done):,}", f"{queued:,}", f"{elapsed:.1f}", f"{len(done) / elapsed:,.0f}"]


def run() -> None:
    rows = on_each_database(_one)
    print_table(["database", "released", "queued", "s", "messages/s"], rows)
