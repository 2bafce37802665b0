"""CSV import, first half: check the file, map its columns, read rows into candidates.

Nothing here touches the database. A file that is not in the declared encoding is
refused before anything is written (a streaming pre-pass); a row that cannot be used
(ragged, oversized field, bad email, ...) becomes a `Reject` with its line number and
the run goes on.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sendline.csv_safety import unquote_cell
from sendline.errors import InvalidInput, SendlineError
from sendline.store.contact_values import (
    MAX_NAME,
    MAX_PHONE,
    check_field_key,
    clean_name,
    clean_tag,
    coerce_field,
    normalize_email,
)
from sendline.store.models import FIELD_TYPES

STANDARD = ("email", "first_name", "last_name", "phone", "consent", "tags", "lists")
ALIASES = {
    "email": "email",
    "e_mail": "email",
    "email_address": "email",
    "first_name": "first_name",
    "firstname": "first_name",
    "last_name": "last_name",
    "lastname": "last_name",
    "phone": "phone",
    "phone_number": "phone",
    "consent": "consent",
    "sms_consent": "consent",
    "tags": "tags",
    "lists": "lists",
}
SKIP = "-"
YES = frozenset({"yes", "y", "true", "1", "opted_in", "opt_in", "x"})
NO = frozenset({"no", "n", "false", "0", "opted_out", "opt_out"})
MAX_CELL = 10_000
REPORT_CELL = 200
CHUNK = 1 << 20


@dataclass(slots=True)
class Reject:
    line: int
    code: str
    reason: str
    cells: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Candidate:
    """One usable row, as read; phone facts are filled in after classification."""

    line: int
    cells: list[str]
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    fields: dict[str, Any] | None
    tags: list[str] | None
    lists: list[str] | None
    consent: bool | None
    e164: str | None = None
    status: str = "no_phone"
    region: str | None = None
    time_zone: str | None = None


def check_encoding(path: Path, encoding: str) -> int:
    """Decode the whole file once, streaming; return its line count.

    Raises InvalidInput (bad_encoding) naming the line and byte of the first bad byte.
    """
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    except LookupError:
        raise InvalidInput(f"unknown encoding {encoding!r}", code="bad_encoding") from None
    lines = offset = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                _raise_bad_encoding(path, encoding, chunk, exc, offset, lines)
            lines += chunk.count(b"\n")
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            _raise_bad_encoding(path, encoding, b"", exc, offset, lines)
    return lines


def _raise_bad_encoding(
    path: Path, encoding: str, chunk: bytes, exc: UnicodeDecodeError, offset: int, lines: int
) -> None:
    # exc.start is relative to what the decoder held: a few carried-over bytes + chunk.
    carried = len(exc.object) - len(chunk)
    position = max(0, exc.start - carried)
    line = lines + chunk[:position].count(b"\n") + 1
    byte = exc.object[exc.start : exc.start + 1].hex()
    raise InvalidInput(
        f"{path.name} is not valid {encoding}: byte 0x{byte} at line {line} "
        f"(offset {offset + position}); nothing was imported. Give the file's encoding "
        "with --encoding, e.g. --encoding cp1252 for a file saved by Excel",
        code="bad_encoding",
    )


@dataclass(frozen=True)
class ColumnMap:
    """Which CSV column feeds which contact attribute."""

    header: list[str]
    standard: dict[str, int]
    custom: list[tuple[int, str, str]]  # (column, field key, field type)

    @property
    def has_consent(self) -> bool:
        return "consent" in self.standard

    def new_fields(self, existing: Mapping[str, str]) -> dict[str, str]:
        """Custom fields the mapping names that the account does not have yet."""
        return {key: type_ for _, key, type_ in self.custom if key not in existing}


def parse_mappings(items: list[str]) -> dict[str, str]:
    """['Mobile=phone', 'Notes=-'] -> {'Mobile': 'phone', 'Notes': '-'}."""
    mapping: dict[str, str] = {}
    for item in items:
        column, sep, target = item.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise InvalidInput(f"mapping {item!r} must look like 'Column=target'", code="bad_map")
        mapping[column.strip()] = target.strip()
    return mapping


def build_map(
    header: list[str], mapping: Mapping[str, str], fields: Mapping[str, str]
) -> ColumnMap:
    """Map each header: by --map, a standard name or alias, or an existing custom key."""
    header = [h.strip() for h in header]
    missing = [c for c in mapping if c not in header]
    if missing:
        raise InvalidInput(
            f"--map names column {missing[0]!r}, which the file does not have "
            f"(columns: {', '.join(header)})",
            code="bad_map",
        )
    standard: dict[str, int] = {}
    custom: list[tuple[int, str, str]] = []
    for index, name in enumerate(header):
        target = _target(name, mapping.get(name), fields)
        if target is None:
            continue
        if isinstance(target, tuple):
            custom.append((index, *target))
            continue
        if target in standard:
            raise InvalidInput(f"two columns map to {target}", code="bad_map")
        standard[target] = index
    keys = [key for _, key, _ in custom]
    if len(set(keys)) != len(keys):
        raise InvalidInput("two columns map to the same custom field", code="bad_map")
    if "email" not in standard and "phone" not in standard:
        raise InvalidInput(
            "the file needs an email or a phone column (map one with --map 'Column=phone')",
            code="bad_map",
        )
    return ColumnMap(header, standard, custom)


def _target(
    name: str, mapped: str | None, fields: Mapping[str, str]
) -> str | tuple[str, str] | None:
    if mapped == SKIP or (mapped is None and not name):
        return None  # skipped, or a column without a name (a trailing comma)
    if mapped is not None:
        key, _, type_ = mapped.partition(":")
        if not type_ and key.lower() in STANDARD:
            return key.lower()
        return _custom(key, type_ or fields.get(key, "text"), fields)
    alias = ALIASES.get(re.sub(r"[\s\-]+", "_", name.lower()))
    if alias is not None:
        return alias
    if name in fields:
        return (name, fields[name])
    raise InvalidInput(
        f"unknown column {name!r}: map it with --map '{name}=FIELD_KEY' (a custom field, "
        f"optionally FIELD_KEY:number|date|phone) or --map '{name}=-' to skip it",
        code="unknown_column",
    )


def _custom(key: str, type_: str, fields: Mapping[str, str]) -> tuple[str, str]:
    check_field_key(key)
    if type_ not in FIELD_TYPES:
        raise InvalidInput(f"custom field type {type_!r} is not one of {', '.join(FIELD_TYPES)}")
    if key in fields and fields[key] != type_:
        raise InvalidInput(f"custom field {key} already exists with type {fields[key]}")
    return (key, type_)


def read_rows(handle: TextIO, delimiter: str = ",") -> Iterator[tuple[int, list[str] | None, str]]:
    """(first line of the record, cells or None, parse error) for every record."""
    reader = csv.reader(handle, delimiter=delimiter)
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, None, str(exc)
            continue
        if cells:
            yield line, cells, ""


class RowParser:
    """Turns the cells of one record into a Candidate or a Reject."""

    def __init__(self, columns: ColumnMap) -> None:
        self.columns = columns
        self.width = len(columns.header)
        get = columns.standard.get
        self._email, self._first, self._last = get("email"), get("first_name"), get("last_name")
        self._phone, self._consent = get("phone"), get("consent")
        self._tags, self._lists = get("tags"), get("lists")

    def parse(self, line: int, cells: list[str]) -> Candidate | Reject:
        if len(cells) != self.width:
            return Reject(
                line, "ragged_row", f"expected {self.width} fields, found {len(cells)}", cells
            )
        longest = max(map(len, cells))
        if longest > MAX_CELL:
            return Reject(line, "field_too_long", f"a field has {longest:,} characters", cells)
        try:
            return self._candidate(line, cells)
        except SendlineError as exc:
            return Reject(line, exc.code, exc.message, cells)

    def _candidate(self, line: int, cells: list[str]) -> Candidate:
        # The hot path of the reading thread: positional arguments, and columns the
        # file does not have skipped before any call.
        phone = _cell(cells, self._phone)
        if phone is not None and len(phone) > MAX_PHONE:
            raise InvalidInput(f"phone is longer than {MAX_PHONE} characters", code="bad_phone")
        email = normalize_email(_cell(cells, self._email)) if self._email is not None else None
        if email is None and phone is None:
            raise InvalidInput("no email or phone", code="no_identity")
        return Candidate(
            line,
            cells,
            email,
            None if self._first is None else _name(cells, self._first, "first name"),
            None if self._last is None else _name(cells, self._last, "last name"),
            phone,
            self._fields(cells) if self.columns.custom else None,
            None if self._tags is None else _split(cells, self._tags, clean_tag),
            None if self._lists is None else _split(cells, self._lists, _list_name),
            None if self._consent is None else _consent(_cell(cells, self._consent)),
        )

    def _fields(self, cells: list[str]) -> dict[str, Any] | None:
        values: dict[str, Any] = {}
        for index, key, type_ in self.columns.custom:
            raw = _cell(cells, index)
            if raw is not None:
                values[key] = coerce_field(key, type_, raw.strip() if type_ != "phone" else raw)
        return values or None


def _cell(cells: list[str], index: int | None) -> str | None:
    if index is None:
        return None
    value = cells[index]
    if value[:1] == "'":  # a cell our own export defused (csv_safety): read it as it was
        value = unquote_cell(value)
    return value if value.strip() else None


def _name(cells: list[str], index: int | None, what: str) -> str | None:
    return clean_name(_cell(cells, index), what)


def _list_name(raw: str) -> str:
    name = raw.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"list name {raw!r} must be 1-{MAX_NAME} characters", code="bad_list")
    return name


def _split(cells: list[str], index: int | None, clean: Any) -> list[str] | None:
    value = _cell(cells, index)
    if value is None:
        return None
    items = sorted({clean(part) for part in value.split(";") if part.strip()})
    return items or None


def _consent(value: str | None) -> bool | None:
    if value is None:
        return None
    word = value.strip().lower()
    if word in YES:
        return True
    if word in NO:
        return False
    raise InvalidInput(f"consent {value!r} must be yes or no", code="bad_consent")


def report_cells(cells: list[str]) -> list[str]:
    """Cells for the reject report, each cut to a readable length."""
    return [c if len(c) <= REPORT_CELL else c[:REPORT_CELL] + "…" for c in cells]
