"""Primary keys taken before the rows are written, for the batch paths.

A batch insert that needs its new ids back (`INSERT ... RETURNING`, in parameter order)
costs far more than the insert itself: SQLite cannot promise the order of a multi-row
RETURNING, so SQLAlchemy falls back to one statement per row, and PostgreSQL's
multi-row form is parsed afresh for every batch size. Taking the ids first turns the
insert into a plain executemany, and lets related rows (a message and its credit
reservation) point at each other in the same pass.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

# Tables whose ids are taken in advance. Only these names reach the SQL below.
_TABLES = frozenset({"messages", "credit_ledger"})


def allocate_ids(session: Session, table: str, count: int) -> list[int]:
    """`count` fresh ids for `table`, never handed out to anyone else."""
    if table not in _TABLES:
        raise ValueError(f"ids are not allocated in advance for {table!r}")
    if count <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # Sequences are outside transactions: ids taken here are never reused, even if
        # this transaction rolls back (a gap, as with any serial column).
        rows = session.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table, "n": count},
        )
        return [int(value) for (value,) in rows]
    return _allocate_sqlite(session, table, count)


def _allocate_sqlite(session: Session, table: str, count: int) -> list[int]:
    # Every Sendline transaction on SQLite starts with BEGIN IMMEDIATE, so this one holds
    # the only write lock: nobody else can insert between this read and our insert.
    # The tables are AUTOINCREMENT: sqlite_sequence remembers the highest id ever used.
    # Moving it past the ids taken here keeps them ours, written or not, as a sequence
    # would on PostgreSQL (and a rollback gives them back, which is just as safe).
    highest = session.execute(
        text(
            f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = :table), 0), "
            f"coalesce((SELECT max(id) FROM {table}), 0))"
        ),
        {"table": table},
    ).scalar_one()
    start = int(highest) + 1
    last = start + count - 1
    moved = session.execute(
        text("UPDATE sqlite_sequence SET seq = :last WHERE name = :table"),
        {"last": last, "table": table},
    )
    if moved.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(
            text("INSERT INTO sqlite_sequence (name, seq) VALUES (:table, :last)"),
            {"last": last, "table": table},
        )
    return list(range(start, last + 1))
