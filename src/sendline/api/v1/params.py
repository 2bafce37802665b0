"""Path and query parameters shared by the /api/v1 routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from sendline.store.ids import MAX_ID

# An object's id in a path. Bounded so that a 25-digit id is a 422 (or simply not
# found), never a driver error: ids are 32-bit on PostgreSQL.
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID, description="The object's id.")]
