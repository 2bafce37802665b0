"""Batch writes on the driver connection: the hot paths of the engine and the import.

A blast writes several rows per message (the message, its credit reservation, its
charge, the carrier's record) and updates each a few times; an import writes a million
contacts. Through the ORM, or even Core executemany, SQLAlchemy's per-row parameter
handling costs more than the database spends on the row, and on PostgreSQL an
executemany is still one statement per row on the server. So, on the driver connection
and inside the transaction it is given:

- inserts go through COPY on PostgreSQL and one executemany on SQLite (whose loop is C);
- per-row updates by id go through one `UPDATE ... FROM unnest(arrays)` on PostgreSQL
  (one statement and one join, whatever the batch size) and an executemany on SQLite;
- primary keys are taken before the rows are written (`allocate_ids`), so related rows
  point at each other in the same pass and no insert needs RETURNING.

Two ways in, over the same statements and the same timestamp conversion:
- `insert_rows` / `update_rows` take dicts and convert them with the columns' own
  SQLAlchemy types, so what lands is what the ORM would have written (the engine);
- `DriverWriter` takes plain tuples already in the driver's form, for binary COPY:
  formatting timestamps as text and parsing them back cost more than storing the row
  did, on both sides of the connection (the import, a million rows).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from datetime import datetime
from typing import Any, cast

from psycopg.types.string import BytesBinaryDumper
from sqlalchemy import Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session

from sendline.store.types import UTCDateTime

CopyColumn = tuple[str, str]  # (name, PostgreSQL type name for binary COPY)
IMPORT_CACHE_KB = 64 * 1024
_EMPTY_JSONB = b"\x01{}"
_TIMESTAMP = UTCDateTime()


def insert_rows(
    target: Session | Connection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert `rows` (dicts with the same keys; columns left out take their default)."""
    if not rows:
        return
    connection = target.connection() if isinstance(target, Session) else target
    write_rows(connection.connection.dbapi_connection, connection.dialect, table, rows)


def write_rows(raw: Any, dialect: Dialect, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """`insert_rows` on a raw DBAPI connection (the caller owns the transaction)."""
    names = list(rows[0])
    defaults = _defaults(table, names)
    converted = _columns(table, dialect, names, rows)
    converted += [[value] * len(rows) for value in _row(table, dialect, defaults)]
    quote = dialect.identifier_preparer.quote
    columns = [quote(name) for name in (*names, *defaults)]
    values = list(zip(*converted, strict=True))
    _insert(raw, dialect.name == "postgresql", quote(table.name), columns, values)


def _insert(
    raw: Any,
    postgres: bool,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    copy_types: Sequence[str] | None = None,
) -> None:
    """The one INSERT of a batch: COPY on PostgreSQL (binary when `copy_types` names the
    columns' types, text otherwise), one executemany on SQLite."""
    listed = ", ".join(columns)
    with closing(raw.cursor()) as cursor:
        if not postgres:
            marks = ", ".join("?" * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({listed}) VALUES ({marks})", rows)
            return
        binary = " (FORMAT BINARY)" if copy_types is not None else ""
        if copy_types is not None:
            # bytea: json_cell's bytes go through as they are, by the driver's C
            # dumper (the one registered for the type by default is Python).
            cursor.adapters.register_dumper(bytes, BytesBinaryDumper)
        with cursor.copy(f"COPY {table} ({listed}) FROM STDIN{binary}") as copy:
            if copy_types is not None:
                copy.set_types(copy_types)
            for row in rows:
                copy.write_row(row)


def update_rows(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    key: str = "id",
    fixed: Mapping[str, Any] | None = None,
) -> None:
    """Set, for each row, its columns on the table row whose `key` matches, and the
    `fixed` values (the same for every row: bound once, not once a row)."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    names = [name for name in rows[0] if name != key]
    quote = dialect.identifier_preparer.quote
    target, qkey = quote(table.name), quote(key)
    converted = _columns(table, dialect, [key, *names], rows)
    fixed = fixed or {}
    constants = _row(table, dialect, fixed) if fixed else []
    raw = connection.connection.dbapi_connection
    with closing(raw.cursor()) as cursor:  # type: ignore[union-attr]
        if dialect.name == "postgresql":
            arrays = [
                f"%s::{table.c[name].type.compile(dialect=dialect)}[]" for name in (key, *names)
            ]
            sets = ", ".join(
                [f"{quote(name)} = %s" for name in fixed]
                + [f"{quote(name)} = v.{quote(name)}" for name in names]
            )
            cursor.execute(
                f"UPDATE {target} SET {sets} FROM unnest({', '.join(arrays)}) "
                f"AS v({', '.join(map(quote, [key, *names]))}) WHERE {target}.{qkey} = v.{qkey}",
                [*constants, *converted],
            )
        else:
            sets = ", ".join(f"{quote(name)} = ?" for name in (*fixed, *names))
            cursor.executemany(
                f"UPDATE {target} SET {sets} WHERE {qkey} = ?",
                [(*constants, *row) for row in zip(*converted[1:], converted[0], strict=True)],
            )


def _defaults(table: Table, names: Sequence[str]) -> dict[str, Any]:
    """Values for the columns left out that have a Python-side default."""
    defaults: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in names or default is None or column.primary_key:
            continue
        arg = getattr(default, "arg", None)
        if getattr(default, "is_scalar", False):
            defaults[column.name] = arg
        elif callable(arg):
            defaults[column.name] = arg(None)  # SQLAlchemy wraps it to take a context
    return defaults


def _columns(
    table: Table, dialect: Dialect, names: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> list[list[Any]]:
    """The rows' values column by column, as the columns' types bind them.

    Column by column: a column without a bind processor costs nothing per value, and a
    timestamp column (a batch shares one `now`) converts each distinct value once.
    """
    converted = []
    for name in names:
        values = [row[name] for row in rows]
        column_type = table.c[name].type
        convert: Callable[[Any], Any] | None
        if isinstance(column_type, UTCDateTime):
            convert = timestamp_converter(dialect)
        else:
            convert = column_type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            values = [None if value is None else convert(value) for value in values]
        converted.append(values)
    return converted


def _row(table: Table, dialect: Dialect, values: Mapping[str, Any]) -> list[Any]:
    """One row's values, bound by the columns' types."""
    return [column[0] for column in _columns(table, dialect, list(values), [values])]


def timestamp_converter(dialect: Dialect) -> Callable[[datetime], Any]:
    """A UTC timestamp as a `UTCDateTime` column binds it on `dialect`, each distinct
    value converted once (a batch shares one `now`).

    The dialect's own form: on SQLite, naive UTC text exactly as the ORM writes it (with
    microseconds, which sqlite3's own adapter leaves out at whole seconds, and which it
    would format again for every row); on PostgreSQL the aware value.
    """
    processor = _TIMESTAMP.dialect_impl(dialect).bind_processor(dialect)
    convert = cast(Callable[[Any], Any], processor)
    seen: dict[Any, Any] = {}

    def cached(value: Any) -> Any:
        try:
            return seen[value]
        except KeyError:
            result = seen[value] = convert(value)
            return result

    return cached


class DriverWriter:
    """Batch writes of rows already in the driver's form, on a session's connection and
    inside its transaction; with the keyed reads an upsert needs first. `close` when done.
    """

    def __init__(self, session: Session) -> None:
        connection = session.connection()
        self.postgres = connection.dialect.name == "postgresql"
        self._raw: Any = cast(Any, connection.connection.dbapi_connection)
        self.timestamp = timestamp_converter(connection.dialect)
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

    def insert(
        self, table: str, columns: Sequence[CopyColumn], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Insert rows by binary COPY; `columns` are (name, PostgreSQL type) pairs, and
        JSON columns take `json_cell` values, timestamps `timestamp` ones."""
        copy_types = ["bytea" if kind == "jsonb" else kind for _, kind in columns]
        names = [name for name, _ in columns]
        _insert(self._raw, self.postgres, table, names, rows, copy_types)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """executemany of `sql`, whose placeholders are written `%s`."""
        with closing(self._raw.cursor()) as cursor:
            cursor.executemany(self._placeholders(sql), rows)

    def _placeholders(self, sql: str) -> str:
        return sql if self.postgres else sql.replace("%s", "?")

    def next_ids(self, table: str, count: int) -> list[int]:
        """`count` fresh primary keys for `table` (the caller holds the write lock on SQLite)."""
        return next_ids(self._raw, self.postgres, table, count)

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
        keyed = [(key_column, keys)]
        found = self.select_keyed_many(columns, table, where, params, keyed, lock=lock)
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
        with closing(self._raw.cursor()) as cursor:
            cursor.execute(self._placeholders(" UNION ALL ".join(parts)), bound)
            return list(cursor.fetchall())


# -- primary keys taken before the rows are written -------------------------------------
# A batch insert that needs its new ids back (`INSERT ... RETURNING`, in parameter order)
# costs far more than the insert itself: SQLite cannot promise the order of a multi-row
# RETURNING, so SQLAlchemy falls back to one statement per row, and PostgreSQL's
# multi-row form is parsed afresh for every batch size. Taking the ids first turns the
# insert into a plain executemany or COPY.

# Tables whose ids are taken in advance (all AUTOINCREMENT on SQLite). Only these
# names reach the SQL below.
_ID_TABLES = frozenset({"messages", "credit_ledger", "contacts"})
_SEQUENCES: dict[str, str] = {}  # table -> its serial sequence, named once per process


def allocate_ids(session: Session, table: str, count: int) -> list[int]:
    """`count` fresh ids for `table`, never handed out to anyone else."""
    connection = session.connection()  # begins the transaction (the lock, on SQLite)
    postgres = connection.dialect.name == "postgresql"
    return next_ids(connection.connection.dbapi_connection, postgres, table, count)


def next_ids(raw: Any, postgres: bool, table: str, count: int) -> list[int]:
    """`allocate_ids` on the raw DBAPI connection of a transaction already begun."""
    if table not in _ID_TABLES:
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
