"""What can be a row id: the range an id column holds, and the text that spells one.

(Ids taken in advance for the batch paths are `store.batch_writes.allocate_ids`.)
"""

from __future__ import annotations

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
