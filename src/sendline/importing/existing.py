"""CSV import: existing contacts as a batch sees them, and how a row matches and merges.

Nothing here queries: `batch` reads the existing contacts, these helpers decide.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sendline.importing.rows import Candidate


class Old(NamedTuple):
    """An existing contact, as the batch needs it."""

    id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    phone_e164: str | None
    phone_status: str
    phone_region: str | None
    time_zone: str | None
    fields: dict[str, Any]
    sms_consent: str


class IdSet:
    """A set of positive ints as a bitmap: 1 bit per id, so 1M ids take 125 kB."""

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, value: int) -> None:
        index = value >> 3
        if index >= len(self._bits):
            self._bits.extend(bytes(index - len(self._bits) + 1 + len(self._bits) // 2))
        self._bits[index] |= 1 << (value & 7)

    def __contains__(self, value: int) -> bool:
        index = value >> 3
        return index < len(self._bits) and bool(self._bits[index] >> (value & 7) & 1)


def merged(c: Candidate, old: Old) -> tuple[Any, ...] | None:
    """The new values of the editable columns, or None when the row changes nothing."""
    if c.phone is not None and c.phone != old.phone:
        phone: tuple[Any, ...] = (c.phone, c.e164, c.status, c.region, c.time_zone)
    else:
        phone = (old.phone, old.phone_e164, old.phone_status, old.phone_region, old.time_zone)
    values = (
        c.email or old.email,
        c.first_name or old.first_name,
        c.last_name or old.last_name,
        *phone,
        {**old.fields, **c.fields} if c.fields else old.fields,
    )
    current = (old.email, old.first_name, old.last_name, *old[4:9], old.fields)
    return None if values == current else values


RAW = "raw:"


def phone_key_of(c: Candidate) -> str | None:
    """How a row is matched by phone: its E.164 form, or, for a row with neither email
    nor a textable phone, its phone as submitted (so re-importing the file updates that
    contact instead of adding another)."""
    if c.e164 is not None:
        return c.e164
    if c.email or c.phone is None:
        return None
    return RAW + c.phone
