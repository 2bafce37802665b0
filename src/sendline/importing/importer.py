"""CSV import, second half: classify phones and upsert contacts in batches.

One transaction for the whole file: an import is applied completely or not at all (the
caller commits). For a large file three things overlap: this thread reads and checks
rows, worker processes classify phone numbers (the costly part), and a writer thread
stores earlier batches in file order. Memory stays flat whatever the file size: rows are
streamed, a few batches are in flight at a time, and the only state kept across batches
is a bitmap of the contact ids this run already wrote (one bit per id), used to report a row that
repeats an earlier row's email or phone as a duplicate. Re-running a file changes
nothing: values equal to what is stored are not written, and a consent event is only
appended when the row changes the contact's status.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.orm import Session

from sendline.csv_safety import SafeWriter, csv_writer
from sendline.errors import InvalidInput, NotFound
from sendline.importing.batch import BatchWriter
from sendline.importing.phones import PhoneChecker
from sendline.importing.rows import (
    Candidate,
    ColumnMap,
    Reject,
    RowParser,
    build_map,
    check_encoding,
    parse_mappings,
    read_rows,
    report_cells,
)
from sendline.store.accounts import Accounts
from sendline.store.contacts import Contacts

BATCH_SIZE = 5000
# Below this size a worker process costs more to start than it saves.
PARALLEL_FROM_BYTES = 2 << 20
SAMPLE_REJECTS = 20


@dataclass
class ImportOptions:
    mapping: list[str] = field(default_factory=list)  # "Column=target" items
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    disclosure: str | None = None  # the consent text the contacts saw (consent column)
    consent_source: str | None = None
    report_path: Path | None = None
    workers: int | None = None  # phone-checking processes; None: decide from file size
    batch_size: int = BATCH_SIZE


@dataclass
class ImportReport:
    path: Path
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    flagged: int = 0  # stored with a phone no one can text (their messages are held)
    consent_events: int = 0
    runs_started: int = 0  # automation runs its new tags and lists started
    reasons: Counter[str] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)  # invalid_phone, landline
    sample: list[Reject] = field(default_factory=list)  # the first few rejects
    report_path: Path | None = None
    seconds: float = 0.0
    expected: int = 0  # records the file seems to hold (its lines minus the header)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


Progress = Callable[[int, int], None]  # (records done, records expected)


def import_contacts(
    session: Session,
    account_id: int,
    path: Path,
    options: ImportOptions | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a CSV file of contacts into one account, in the caller's transaction."""
    options = options or ImportOptions()
    if len(options.delimiter) != 1 or options.delimiter in '\r\n"':
        raise InvalidInput(f"delimiter {options.delimiter!r} must be one character, e.g. ';'")
    started = time.perf_counter()
    Accounts(session).get(account_id)
    if not path.is_file():
        raise NotFound(f"no file {path}")
    lines = check_encoding(path, options.encoding)
    report = ImportReport(path=path, report_path=options.report_path, expected=max(lines - 1, 0))
    with path.open(encoding=options.encoding, newline="") as handle:
        rows = read_rows(handle, options.delimiter)
        columns = _columns(session, account_id, path, rows, options)
        writer = BatchWriter(
            session,
            account_id,
            has_consent=columns.has_consent,
            disclosure=options.disclosure,
            source=options.consent_source or f"import:{path.name}",
        )
        try:
            with _RejectReport(options.report_path, columns.header, report) as rejects:
                _run(rows, RowParser(columns), writer, rejects, report, options, path, progress)
        finally:
            writer.close()
    report.seconds = time.perf_counter() - started
    return report


def _columns(
    session: Session, account_id: int, path: Path, rows: Iterator[Any], options: ImportOptions
) -> ColumnMap:
    first = next(rows, None)
    if first is None or first[1] is None:
        raise InvalidInput(f"{path.name} has no header row", code="empty_file")
    contacts = Contacts(session, account_id)
    fields = {key: f.type for key, f in contacts.custom_fields().items()}
    columns = build_map(first[1], parse_mappings(options.mapping), fields)
    if columns.has_consent and not (options.disclosure and options.disclosure.strip()):
        raise InvalidInput(
            "the file has a consent column: give the exact text the contacts agreed to "
            "with --disclosure",
            code="disclosure_required",
        )
    if options.disclosure and not columns.has_consent:
        raise InvalidInput(
            "--disclosure needs a consent column (map one with --map 'Column=consent')",
            code="bad_map",
        )
    for key, type_ in columns.new_fields(fields).items():
        contacts.define_field(key, type=type_)
    return columns


def _run(
    rows: Iterator[tuple[int, list[str] | None, str]],
    parser: RowParser,
    writer: BatchWriter,
    rejects: _RejectReport,
    report: ImportReport,
    options: ImportOptions,
    path: Path,
    progress: Progress | None,
) -> None:
    workers = options.workers
    if workers is None:
        large = path.stat().st_size >= PARALLEL_FROM_BYTES
        workers = min(2, _cores()) if large and _cores() > 1 else 0
    write = functools.partial(
        _write, writer=writer, rejects=rejects, report=report, progress=progress
    )
    batches = _batches(rows, parser, options.batch_size)
    with PhoneChecker(workers) as checker:
        if workers:
            _run_overlapped(batches, checker, write)
        else:
            for items in batches:
                checker.submit([c.phone for c in items if isinstance(c, Candidate)])
                write(items, checker.result())


Batch = list[Candidate | Reject]


def _run_overlapped(
    batches: Iterator[Batch],
    checker: PhoneChecker,
    write: Callable[[Batch, list[Any]], None],
) -> None:
    """Read and parse in this thread while a writer thread stores earlier batches.

    The phone workers classify in between. The database drivers release the GIL while
    the database works, so parsing overlaps with writing. Batches are written in file
    order; at most `max_in_flight` wait, so memory stays bounded.
    """
    pending: queue.Queue[Batch | None] = queue.Queue(maxsize=checker.max_in_flight)
    failures: list[BaseException] = []
    stop = threading.Event()

    def drain() -> None:
        while (items := pending.get()) is not None:
            if stop.is_set():
                continue  # keep taking batches so the reader never blocks
            try:
                write(items, checker.result())
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
                failures.append(exc)
                stop.set()

    thread = threading.Thread(target=drain, name="sendline-import-writer", daemon=True)
    thread.start()
    try:
        for items in batches:
            if stop.is_set():
                break
            checker.submit([c.phone for c in items if isinstance(c, Candidate)])
            pending.put(items)
    except BaseException:
        stop.set()
        raise
    finally:
        pending.put(None)
        thread.join()
    if failures:
        raise failures[0]


def _batches(
    rows: Iterator[tuple[int, list[str] | None, str]], parser: RowParser, size: int
) -> Iterator[list[Candidate | Reject]]:
    batch: list[Candidate | Reject] = []
    for line, cells, error in rows:
        if cells is None:
            batch.append(Reject(line, "malformed_row", error))
        else:
            batch.append(parser.parse(line, cells))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write(
    items: list[Candidate | Reject],
    phones: list[Any],
    *,
    writer: BatchWriter,
    rejects: _RejectReport,
    report: ImportReport,
    progress: Progress | None,
) -> None:
    candidates = [c for c in items if isinstance(c, Candidate)]
    for candidate, (status, e164, region, zone) in zip(candidates, phones, strict=True):
        candidate.status, candidate.e164 = status, e164
        candidate.region, candidate.time_zone = region, zone
    result = writer.write(candidates)
    report.rows += len(items)
    report.created += result.created
    report.updated += result.updated
    report.unchanged += result.unchanged
    report.consent_events += result.consent_events
    report.runs_started += result.runs_started
    refused = [r for r in items if isinstance(r, Reject)] + result.rejects
    lines = [(r, True) for r in refused] + [(f, False) for f in result.flagged]
    lines.sort(key=lambda item: item[0].line)
    for reject, is_rejected in lines:
        if is_rejected:
            rejects.add(reject)
        else:
            rejects.flag(reject)
    if progress is not None:
        progress(report.rows, max(report.expected, report.rows))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _RejectReport:
    """Streams rejected and flagged rows to the report file (if any) and counts them."""

    def __init__(self, path: Path | None, header: list[str], report: ImportReport) -> None:
        self._path = path
        self._header = header
        self._report = report
        self._handle: TextIO | None = None
        self._writer: SafeWriter | None = None

    def __enter__(self) -> _RejectReport:
        if self._path is not None:
            self._handle = self._path.open("w", encoding="utf-8", newline="")
            self._writer = csv_writer(self._handle)
            self._writer.writerow(["line", "code", "reason", "outcome", *self._header])
        return self

    def add(self, reject: Reject) -> None:
        self._report.rejected += 1
        self._report.reasons[reject.code] += 1
        if len(self._report.sample) < SAMPLE_REJECTS:
            self._report.sample.append(
                Reject(reject.line, reject.code, reject.reason, report_cells(reject.cells))
            )
        self._write("rejected", reject)

    def flag(self, flagged: Reject) -> None:
        """A row stored as submitted whose phone cannot be texted (R6/R8)."""
        self._report.flagged += 1
        self._report.flags[flagged.code] += 1
        self._write("flagged", flagged)

    def _write(self, outcome: str, row: Reject) -> None:
        if self._writer is not None:
            cells = report_cells(row.cells)
            self._writer.writerow([row.line, row.code, row.reason, outcome, *cells])

    def __exit__(self, *_: object) -> None:
        if self._handle is not None:
            self._handle.close()
