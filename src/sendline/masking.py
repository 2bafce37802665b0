"""What of a secret or a phone number may be shown: logs, errors and listings use these.

Pure and dependency-free. A full auth token or phone number never appears in a log line,
an error or `providers list`; enough is shown to tell two apart (`AC12…89`,
`+1415•••0101`).
"""

from __future__ import annotations


def mask_secret(value: str | None) -> str:
    """`AC12…89`: the first four and last two characters of an id or key."""
    if not value:
        return "-"
    if len(value) <= 8:
        return "…"
    return f"{value[:4]}…{value[-2:]}"


def mask_phone(value: str | None) -> str:
    """`+1415•••0101`: the country and area code, and the last four digits."""
    if not value:
        return "-"
    digits = value.strip()
    if len(digits) <= 8:
        return "•••" + digits[-2:]
    return f"{digits[:5]}•••{digits[-4:]}"
