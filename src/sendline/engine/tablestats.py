"""Fresh planner statistics for the queue tables on PostgreSQL.

A blast fills `messages`, `automation_runs` and the ledger with hundreds of thousands
of rows in a minute, and each message row is updated three or four times. Autovacuum
looks at a table once a minute at best (and some servers run without it). Until a
table is analyzed, PostgreSQL takes it for a ten-page table: the batch statements
(`WHERE id IN (...) AND status = 'queued'`) are then planned as a bitmap AND with the
status index, which reads every queued row's index entry for each batch of 500, and a
blast that should take seconds takes minutes. So the worker analyzes the tables it
fills as soon as they have changed enough, which is what autovacuum would do, sooner.

SQLite needs none of this: its planner does not guess from table sizes here.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("sendline.worker")

# The tables the engine fills at blast speed (a fixed list: the names reach SQL).
HOT_TABLES = ("automation_runs", "messages", "credit_ledger", "sandbox_messages")
# Analyze once this many row changes happened and they are as many as the table's rows
# (autovacuum's own rule is 50 + 10%, checked every minute). Only the first analysis
# is urgent: after it the planner scales the row estimates with the table's actual
# size by itself; later ones follow the shifting mix of statuses.
MIN_CHANGES = 5000
CHANGED_SHARE = 1.0
# One advisory lock for all workers: ANALYZE of a table waits for another one of the
# same table, and one worker doing it is enough.
_LOCK_KEY = 0x53_4C_53_54  # "SLST"

_STALE = text(
    "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
    "WHERE s.schemaname = current_schema() AND s.relname = ANY(:tables) "
    "AND s.n_mod_since_analyze >= "
    "greatest(:min_changes, :share * greatest(c.reltuples, 0))"
)


def refresh_statistics(session_factory: sessionmaker[Session]) -> list[str]:
    """ANALYZE the hot tables that changed enough since their last analysis; returns
    the tables analyzed (none on SQLite, or when another worker is at it)."""
    bind = session_factory.kw.get("bind")
    if bind is None or bind.dialect.name != "postgresql":
        return []  # and no transaction: on SQLite that would take the write lock
    with session_factory.begin() as session:
        if not session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}):
            return []
        stale = list(
            session.scalars(
                _STALE,
                {"tables": list(HOT_TABLES), "min_changes": MIN_CHANGES, "share": CHANGED_SHARE},
            )
        )
        for table in stale:
            if table in HOT_TABLES:  # only our own names reach the statement
                session.execute(text(f"ANALYZE {table}"))
    if stale:
        log.debug("analyzed %s", ", ".join(stale))
    return stale
