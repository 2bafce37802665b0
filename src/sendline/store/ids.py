"""Primary keys taken before the rows are written, for the batch paths.

A batch insert that needs its new ids back (`INSERT ... RETURNING`, in parameter order)
costs far more than the insert itself: SQLite cannot promise the order of a multi-row
RETURNING, so SQLAlchemy falls back to one statement per row, and PostgreSQL's
multi-row form is parsed afresh for every batch size. Taking the ids first turns the
insert into a plain executemany or COPY, and lets related rows (a message and its
credit reservation) point at each other in the same pass.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

from sqlalchemy.orm import Session

# Tables whose ids are taken in advance (all AUTOINCREMENT on SQLite). Only these
# names reach the SQL below.
_TABLES = frozenset({"messages", "credit_ledger", "contacts"})
_SEQUENCES: dict[str, str] = {}  # table -> its serial sequence, named once per process


def allocate_ids(session: Session, table: str, count: int) -> list[int]:
    """`count` fresh ids for `table`, never handed out to anyone else."""
    connection = session.connection()  # begins the transaction (the lock, on SQLite)
    postgres = connection.dialect.name == "postgresql"
    return next_ids(connection.connection.dbapi_connection, postgres, table, count)


def next_ids(raw: Any, postgres: bool, table: str, count: int) -> list[int]:
    """`allocate_ids` on the raw DBAPI connection of a transaction already begun."""
    if table not in _TABLES:
        raise ValueError(f"ids are not allocated in advance for {table!r}")
    if count <= 0:
        return []
    with closing(raw.cursor()) as cursor:
        if postgres:
            return _next_postgres(cursor, table, count)
        return _next_sqlite(cursor, table, count)


def _next_postgres(cursor: Any, table: str, count: int) -> list[int]:
    # Sequences are outside transactions: ids taken here are never reused, even if this
    # transaction rolls back (a gap, as with any serial column). The sequence is named
    # once and passed as a regclass: pg_get_serial_sequence in the select list would
    # cost a catalog lookup per id.
    sequence = _SEQUENCES.get(table)
    if sequence is None:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,))
        sequence = _SEQUENCES[table] = str(cursor.fetchone()[0])
    cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", (sequence, count))
    return [int(row[0]) for row in cursor.fetchall()]


def _next_sqlite(cursor: Any, table: str, count: int) -> list[int]:
    # Every Sendline transaction on SQLite starts with BEGIN IMMEDIATE, so this one holds
    # the only write lock: nobody else can insert between this read and our insert.
    # The tables are AUTOINCREMENT: sqlite_sequence remembers the highest id ever used.
    # Moving it past the ids taken here keeps them ours, written or not, as a sequence
    # would on PostgreSQL (and a rollback gives them back, which is just as safe).
    cursor.execute(
        f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
        f"coalesce((SELECT max(id) FROM {table}), 0))",
        (table,),
    )
    start = int(cursor.fetchone()[0]) + 1
    last = start + count - 1
    cursor.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (last, table))
    if cursor.rowcount == 0:
        cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, last))
    return list(range(start, last + 1))


# The widest id any table can hold: ids are INTEGER columns, 32 bits on PostgreSQL
# (SQLite's are 64). A bigger number cannot name a row, and binding it would fail in the
# driver on SQLite ("Python int too large") instead of simply finding nothing.
MAX_ID = 2**31 - 1


def is_id(value: int) -> bool:
    """True when `value` could be a row id (1 to MAX_ID)."""
    return 1 <= value <= MAX_ID


def parse_id(text: str) -> int | None:
    """The row id `text` spells ("42", " 42 "), or None when it cannot be one: not all
    digits, zero, or beyond MAX_ID. Lookups by id-or-name call this instead of
    `isdigit()` + `int()`, so a 25-digit value is simply not found."""
    text = text.strip()
    # Checked on the length first: int() of a 100 KB digit string is quadratic.
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if is_id(value) else None
