"""Every CSV Sendline writes goes through here: cells a spreadsheet would run are defused.

CSV (formula) injection, as OWASP describes it: a cell that starts with `=`, `+`, `-`,
`@`, a tab or a carriage return is read by Excel, LibreOffice and Google Sheets as a
formula (`=HYPERLINK(...)`, `@SUM(...)`, `=cmd|...`), and a contact's name or custom field
is text anyone filling a form controls. OWASP's advice, followed here: prefix such a
cell with a single quote, so the spreadsheet shows it as text.

Phone numbers: a phone stored as "+1 415 555 0101" starts with `+`, so it is written
`'+1 415 555 0101`, as OWASP says for every such cell. That is also what keeps it
readable: left raw, Excel evaluates it (a spaced number becomes `#NULL!`, an unspaced one
loses its `+` and turns into 14155550101). The quote is visible in a plain text editor;
`contacts import` drops it again (`unquote_cell`), so an export imports back unchanged.
Numbers Sendline writes itself (ids, counts) are written as numbers, never quoted.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The cell as written: text starting like a formula gets a leading single quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def unquote_cell(value: str) -> str:
    """Undo `safe_cell` for a cell read back from one of our own files."""
    if value.startswith("'") and value[1:2] and value[1:2] in FORMULA_STARTS:
        return value[1:]
    return value


class SafeWriter:
    """`csv.writer` whose every text cell passes through `safe_cell`."""

    def __init__(self, out: TextIO, **options: Any) -> None:
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(out: TextIO, **options: Any) -> SafeWriter:
    """The only way Sendline writes CSV (a test greps the sources for others)."""
    return SafeWriter(out, **options)
