"""`column IN (values)` for a batch, as one bound parameter whatever the batch's size.

The engine filters by a batch's ids in nearly every statement (claims, outcomes,
receipts, credit settlements). A plain `IN (?, ?, ...)` costs per value on every
execution: SQLAlchemy coerces each literal and renders one placeholder each, psycopg
re-parses the long statement, the server plans a new text for every batch size, and
SQLite's statement cache misses. One parameter keeps the text fixed:

- PostgreSQL: `column = ANY(:array)`;
- SQLite: `column IN (SELECT value FROM json_each(:json))`, a rowid or index lookup per
  value, exactly as with a literal list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    any_,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import UserDefinedType


def among(session: Session, column: Any, values: Iterable[int | str]) -> ColumnElement[bool]:
    """`column IN values` for an integer or text column, for `session`'s database."""
    if session.get_bind().dialect.name == "postgresql":
        if isinstance(column.type, Integer):
            ids = bindparam(None, IdList(cast(Iterable[int], values)), type_=_IdArray())
            condition: ColumnElement[bool] = column == any_(ids)
            return condition
        array = bindparam(None, list(values), type_=ARRAY(column.type))
        condition = column == any_(array)
        return condition
    each = func.json_each(bindparam(None, json.dumps(list(values)))).table_valued("value")
    return column.in_(select(each.c.value))  # type: ignore[no-any-return]


class IdList(list[int]):
    """Ids bound as one PostgreSQL array in binary: `store.db` registers psycopg's
    binary list dumper for this type. The default (text) dumper quotes each element
    with a regex, about 1 µs an id, on every claim, outcome and settlement."""


class _IdArray(UserDefinedType[list[int]]):
    """A BIGINT[] parameter passed through as it is (ARRAY's own bind processing would
    copy it into a plain list, which psycopg dumps as text)."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "BIGINT[]"


def unindexed(column: Any) -> ColumnElement[str]:
    """`column || ''`: the same text, but no index on `column` can serve the condition.

    For a condition beside `among(ids)` on a low-cardinality column (`status = 'sent'`):
    SQLite's planner, which keeps no statistics here, prefers the equality on the
    indexed column to the id list and walks every row in that status, a cost growing
    with the size of a blast. Without an index to choose, it looks up the ids one by one.
    PostgreSQL plans by its statistics and reaches the same plan either way.
    """
    return column + literal_column("''")  # type: ignore[no-any-return]
