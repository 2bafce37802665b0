"""Bulk reads and writes on the driver connection, for the import's hot path.

The ORM and even Core executemany spend more time binding parameters than the database
spends storing rows. Here rows are plain tuples already in the driver's format: on
PostgreSQL they go through binary COPY, on SQLite through one prepared executemany. Both
run on the session's own connection, inside its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from typing import Any, cast

from psycopg.types.string import BytesBinaryDumper
from sqlalchemy.orm import Session

from sendline.store.ids import next_ids

IMPORT_CACHE_KB = 64 * 1024

Column = tuple[str, str]  # (name, PostgreSQL type name for binary COPY)
_EMPTY_JSONB = b"\x01{}"


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

    def json_cell(self, value: Any) -> str | bytes:
        """A JSON value for `insert`: text on SQLite, jsonb's binary form on PostgreSQL.

        That form is a version byte and the JSON text; written here rather than by the
        driver's jsonb dumper so the common empty object costs nothing.
        """
        if not value:
            return _EMPTY_JSONB if self.postgres else "{}"
        text = json.dumps(value)
        return b"\x01" + text.encode() if self.postgres else text

    def load_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    def insert(self, table: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]]) -> None:
        """Insert rows; `columns` are (name, PostgreSQL type) pairs.

        Binary COPY: formatting timestamps as text and parsing them back cost more than
        storing the row did, on both sides of the connection. JSON columns take
        `json_cell` values.
        """
        names = ", ".join(name for name, _ in columns)
        with closing(self._raw.cursor()) as cursor:
            if self.postgres:
                sql = f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)"
                # bytea: json_cell's bytes go through as they are, by the driver's C
                # dumper (the one registered for the type by default is Python).
                cursor.adapters.register_dumper(bytes, BytesBinaryDumper)
                with cursor.copy(sql) as copy:
                    copy.set_types(["bytea" if t == "jsonb" else t for _, t in columns])
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
        `keys`, passed as one parameter however many keys there are."""
        found = self.select_keyed_many(
            columns, table, where, params, [(key_column, keys)], lock=lock
        )
        return [row[1:] for row in found]

    def select_keyed_many(
        self,
        columns: str,
        table: str,
        where: str,
        params: Sequence[Any],
        keyed: Sequence[tuple[str, Sequence[str] | Sequence[int]]],
        *,
        lock: bool = False,
    ) -> list[Any]:
        """`select_keyed` for several (key column, keys) pairs in one statement: each row
        starts with the index of the pair it matched (a row matching two comes twice).

        On PostgreSQL each key is one probe of the index (a LATERAL join): with a table
        filled inside the current transaction the planner has no statistics and would
        otherwise scan every row of the account for each batch. The keys travel as one
        JSON text: the driver dumps a list parameter element by element in Python,
        several times slower than json.dumps.
        """
        parts: list[str] = []
        bound: list[Any] = []
        lock_clause = " FOR UPDATE" if lock else ""
        for index, (column, keys) in enumerate(keyed):
            if not keys:
                continue
            if self.postgres:
                kind = "bigint" if isinstance(keys[0], int) else "text"
                parts.append(
                    f"SELECT {index} AS keyed_by, x.* FROM json_array_elements_text(%s::json) "
                    f"AS k(v) CROSS JOIN LATERAL (SELECT {columns} FROM {table} WHERE {where} "
                    f"AND {column} = k.v::{kind}{lock_clause}) AS x"
                )
                bound += [json.dumps(list(keys)), *params]
            else:
                parts.append(
                    f"SELECT {index}, {columns} FROM {table} WHERE {where} AND {column} "
                    "IN (SELECT value FROM json_each(%s))"
                )
                bound += [*params, json.dumps(list(keys))]
        if not parts:
            return []
        sql = " UNION ALL ".join(parts)
        with closing(self._raw.cursor()) as cursor:
            cursor.execute(sql if self.postgres else sql.replace("%s", "?"), bound)
            return list(cursor.fetchall())

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """executemany of `sql`, whose placeholders are written `%s`."""
        text = sql if self.postgres else sql.replace("%s", "?")
        with closing(self._raw.cursor()) as cursor:
            cursor.executemany(text, rows)

    def next_ids(self, table: str, count: int) -> list[int]:
        """`count` fresh primary keys for `table` (the caller holds the write lock on SQLite)."""
        return next_ids(self._raw, self.postgres, table, count)
