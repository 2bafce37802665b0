"""Bulk reads and writes on the driver connection, for the import's hot path.

The ORM and even Core executemany spend more time binding parameters than the database
spends storing rows. Here rows are plain tuples already in the driver's format: on
PostgreSQL they go through COPY, on SQLite through one prepared executemany. Both run
on the session's own connection, inside its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy.orm import Session

IMPORT_CACHE_KB = 64 * 1024


class Bulk:
    def __init__(self, session: Session) -> None:
        connection = session.connection()
        self.postgres = connection.dialect.name == "postgresql"
        self._raw: Any = cast(Any, connection.connection.dbapi_connection)
        self._cache_size: int | None = None
        if not self.postgres:
            # Random inserts into the E.164 and email indexes miss SQLite's default 2 MB
            # page cache at every row once the table is large; 64 MB keeps them in memory.
            self._cache_size = self._pragma("cache_size")
            self._raw.execute(f"PRAGMA cache_size = {-IMPORT_CACHE_KB}")

    def close(self) -> None:
        """Give the connection back as it was."""
        if self._cache_size is not None:
            self._raw.execute(f"PRAGMA cache_size = {self._cache_size}")
            self._cache_size = None

    def _pragma(self, name: str) -> int:
        with closing(self._raw.cursor()) as cursor:
            cursor.execute(f"PRAGMA {name}")
            return int(cursor.fetchone()[0])

    def timestamp(self, value: datetime) -> Any:
        """A UTC timestamp as the column type stores it (naive UTC text on SQLite)."""
        if self.postgres:
            return value
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    @staticmethod
    def json(value: Any) -> str:
        return json.dumps(value)

    def load_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        names = ", ".join(columns)
        with closing(self._raw.cursor()) as cursor:
            if self.postgres:
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns))
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)

    def select_keyed(
        self,
        columns: str,
        table: str,
        where: str,
        params: Sequence[Any],
        key_column: str,
        keys: Sequence[str] | Sequence[int],
        *,
        lock: bool = False,
    ) -> list[Any]:
        """Rows of `table` matching `where` (placeholders `%s`) whose `key_column` is in
        `keys`, passed as one parameter however many keys there are.

        On PostgreSQL each key is one probe of the index (a LATERAL join): with a table
        filled inside the current transaction the planner has no statistics and would
        otherwise scan every row of the account for each batch.
        """
        if self.postgres:
            kind = "bigint" if keys and isinstance(keys[0], int) else "text"
            lock_clause = " FOR UPDATE" if lock else ""
            sql = (
                f"SELECT x.* FROM unnest(%s::{kind}[]) AS k(v) CROSS JOIN LATERAL "
                f"(SELECT {columns} FROM {table} WHERE {where} AND {key_column} = k.v"
                f"{lock_clause}) AS x"
            )
            bound: list[Any] = [list(keys), *params]
        else:
            sql = (
                f"SELECT {columns} FROM {table} WHERE {where} AND {key_column} "
                "IN (SELECT value FROM json_each(%s))"
            ).replace("%s", "?")
            bound = [*params, json.dumps(list(keys))]
        with closing(self._raw.cursor()) as cursor:
            cursor.execute(sql, bound)
            return list(cursor.fetchall())

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """executemany of `sql`, whose placeholders are written `%s`."""
        text = sql if self.postgres else sql.replace("%s", "?")
        with closing(self._raw.cursor()) as cursor:
            cursor.executemany(text, rows)

    def next_ids(self, table: str, count: int) -> list[int]:
        """`count` fresh primary keys for `table` (the caller holds the write lock on SQLite)."""
        with closing(self._raw.cursor()) as cursor:
            if self.postgres:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    (table, count),
                )
                return [row[0] for row in cursor.fetchall()]
            cursor.execute(
                f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
                f"coalesce((SELECT max(id) FROM {table}), 0))",
                (table,),
            )
            start = int(cursor.fetchone()[0]) + 1
            return list(range(start, start + count))
