"""Cursor pagination, the same on every list under /api/v1.

Lists are newest first, by id. A page carries `next_cursor`, an opaque token for the
page after it (None on the last page); the client sends it back as `?cursor=`. The
cursor is keyset ("ids below N"), not an offset: a page costs the same however deep,
and rows inserted meanwhile neither shift nor repeat what the client has seen.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from sendline.errors import InvalidInput
from sendline.store.ids import MAX_ID

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_PREFIX = "v1:"

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1 to 200).")]
Cursor = Annotated[
    str | None,
    Query(max_length=64, description="`next_cursor` of the previous page."),
]


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first."""

    data: list[T]
    next_cursor: str | None = None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{last_id}".encode()).decode().rstrip("=")


def before_id(cursor: str | None) -> int | None:
    """The id a page starts below; None for the first page. A cursor the server did
    not make is a 422 naming the `cursor` field."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    digits = text.removeprefix(_PREFIX)
    if not text.startswith(_PREFIX) or not digits.isdigit() or not 0 < int(digits) <= MAX_ID + 1:
        raise InvalidInput("cursor is not one this server gave out", field="cursor")
    return int(digits)


def page_of(
    rows: Sequence[R], limit: int, convert: Callable[[R], T], id_of: Callable[[R], int]
) -> Page[T]:
    """A page from `limit + 1` rows fetched newest first: the extra row, when there,
    only says that another page follows."""
    shown = rows[:limit]
    more = len(rows) > limit
    return Page[T](
        data=[convert(row) for row in shown],
        next_cursor=encode_cursor(id_of(shown[-1])) if more and shown else None,
    )
