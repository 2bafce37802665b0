"""Many rows written in one statement, on the driver connection: the engine's hot path.

A blast writes several rows per message (the message, its credit reservation, its
charge, the carrier's record) and updates each a few times. Through the ORM, or even
Core executemany, SQLAlchemy's per-row parameter handling costs more than the database
spends on the row, and on PostgreSQL an executemany is still one statement per row on
the server. So:

- inserts go through COPY on PostgreSQL and one executemany on SQLite (whose loop is C);
- per-row updates by id go through one `UPDATE ... FROM unnest(arrays)` on PostgreSQL
  (one statement and one join, whatever the batch size) and an executemany on SQLite.

Values are converted with the columns' own SQLAlchemy types (the UTC timestamps), so
what lands is what the ORM would have written. Everything runs on the connection and
inside the transaction it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session

from sendline.store.types import UTCDateTime


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
    columns = [*names, *defaults]
    converted = _columns(table, dialect, names, rows)
    converted += [[value] * len(rows) for value in _row(table, dialect, defaults)]
    values = list(zip(*converted, strict=True))
    quote = dialect.identifier_preparer.quote
    listed = ", ".join(map(quote, columns))
    with closing(raw.cursor()) as cursor:
        if dialect.name == "postgresql":
            with cursor.copy(f"COPY {quote(table.name)} ({listed}) FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)
        else:
            marks = ", ".join("?" * len(columns))
            cursor.executemany(
                f"INSERT INTO {quote(table.name)} ({listed}) VALUES ({marks})", values
            )


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
        # The dialect's own form of the type: on SQLite, the timestamp text exactly as
        # the ORM writes it (with microseconds, which sqlite3's own adapter leaves out
        # at whole seconds, and which it would format again for every row).
        processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            convert: Callable[[Any], Any] = processor
            if isinstance(table.c[name].type, UTCDateTime):
                convert = _memoized(processor)
            values = [None if value is None else convert(value) for value in values]
        converted.append(values)
    return converted


def _row(table: Table, dialect: Dialect, values: Mapping[str, Any]) -> list[Any]:
    """One row's values, bound by the columns' types."""
    return [column[0] for column in _columns(table, dialect, list(values), [values])]


def _memoized(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    seen: dict[Any, Any] = {}

    def cached(value: Any) -> Any:
        try:
            return seen[value]
        except KeyError:
            result = seen[value] = convert(value)
            return result

    return cached
