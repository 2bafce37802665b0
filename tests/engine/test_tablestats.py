"""Planner statistics for the queue tables (PostgreSQL): analyzed once they changed a
lot, not at every pass; nothing to do on SQLite."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Engine, Table, text
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.tablestats import HOT_TABLES, MIN_CHANGES, refresh_statistics
from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.batch_writes import insert_rows
from tests.engine.factories import NOW


def _accept(session: Session, count: int, first: int = 0) -> None:
    """`count` carrier records, as a blast through the sandbox leaves them."""
    rows: list[dict[str, Any]] = [
        {
            "provider_id": f"SM{i:032x}",
            "message_ref": i,
            "to": "+14155550100",
            "body": "Spring sale. Reply STOP to opt out",
            "segments": 1,
            "status": "sent",
            "accepted_at": NOW,
            "report_due_at": NOW + timedelta(seconds=2),
        }
        for i in range(first, first + count)
    ]
    insert_rows(session, cast(Table, SandboxMessage.__table__), rows)
    session.commit()


def _analyze_count(session: Session, table: str) -> int:
    return int(
        session.scalar(
            text(
                "SELECT analyze_count + autoanalyze_count FROM pg_stat_user_tables "
                "WHERE relname = :table"
            ),
            {"table": table},
        )
        or 0
    )


def _publish_stats(session: Session) -> None:
    # A busy backend publishes its row counts every second, an idle one only after ten
    # or when it exits: closing the pooled connections publishes them now.
    session.close()
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    engine.dispose()
    time.sleep(0.5)


def test_it_handles_a_blast_filling_the_queue(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    if session.get_bind().dialect.name != "postgresql":
        _accept(session, 10)
        assert refresh_statistics(session_factory) == []  # SQLite plans without them
        return
    # The test database is shared and truncated between tests: start from fresh stats.
    session.execute(text(f"ANALYZE {', '.join(HOT_TABLES)}"))
    _publish_stats(session)
    assert refresh_statistics(session_factory) == []  # nothing changed: nothing stale
    _accept(session, MIN_CHANGES // 2)
    _publish_stats(session)
    assert refresh_statistics(session_factory) == []  # not enough changes yet
    _accept(session, MIN_CHANGES, first=MIN_CHANGES)
    _publish_stats(session)
    before = _analyze_count(session, "sandbox_messages")
    assert refresh_statistics(session_factory) == ["sandbox_messages"]
    _publish_stats(session)
    assert _analyze_count(session, "sandbox_messages") == before + 1
    assert refresh_statistics(session_factory) == []  # fresh now: not again at every pass
