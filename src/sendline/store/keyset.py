"""Keyset pages, newest first: what every list of the API and the CLI runs.

`id < before_id ORDER BY id DESC LIMIT n` walks the id index from where the last page
ended, so a deep page costs what the first does, and rows inserted meanwhile neither
shift nor repeat what was seen (an OFFSET would do both).
"""

from __future__ import annotations

from typing import TypeVarTuple

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

Row = TypeVarTuple("Row")


def newest_first(
    query: Select[*Row],
    id_column: InstrumentedAttribute[int],
    before_id: int | None,
    limit: int,
) -> Select[*Row]:
    """`query` limited to ids below `before_id` (all when None), newest first, at most
    `limit` rows."""
    if before_id is not None:
        query = query.where(id_column < before_id)
    return query.order_by(id_column.desc()).limit(limit)
