"""Import jobs: a CSV upload imported in the background of the serving process.

The job runs `services.contacts.import_contacts`, the very import `sendline contacts
import` runs: one transaction, all or nothing, tags and lists firing their triggers. Its
outcome (status `done`, the counts, the rejected-rows report) is written inside that
transaction, so a job is `done` exactly when its contacts are committed; a job that
fails says why and that nothing was imported.

One thread per process runs the jobs it was given, one at a time (two imports into one
account at once would fight over the same rows).

A process killed mid-import leaves its job `running`. Nothing has to clean up after it:
whoever reads a job first checks that its owner still lives, and a dead owner's job is
marked `failed` (`import_abandoned`) there and then. On the owner's own host that is a
process check (pid and start time, so a reused pid does not count); from another host
(PostgreSQL) the owner's heartbeat, written every few seconds, must be recent. A
heartbeat alone would not do on SQLite: the import holds the database's one write lock
for its whole transaction, so nothing else can write a heartbeat meanwhile. For the
same reason progress is written to the row on PostgreSQL only; on SQLite the owning
process reports it from memory.
"""

from __future__ import annotations

import io
import shutil
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import Conflict, InvalidInput, NotFound, SendlineError
from sendline.importing.rows import build_map, parse_mappings, read_rows
from sendline.services import AccountRef, resolve_account
from sendline.services.import_runner import (
    COUNTS,
    NOTHING_IMPORTED,
    ImportRequest,
    Live,
    discard_upload,
    new_upload_folder,
    owner,
    owner_alive,
    runner,
)
from sendline.store.contacts import Contacts
from sendline.store.import_models import ImportJob
from sendline.store.keyset import newest_first

Sessions = sessionmaker[Session]
SNIFF_BYTES = 64 << 10
COPY_CHUNK = 1 << 20


class UploadTooLarge(SendlineError):
    """The uploaded file is over the limit (413)."""

    code = "upload_too_large"


class ImportNotDone(Conflict):
    """The job has no report yet (still running) or never will (failed)."""

    code = "import_not_done"


@dataclass(frozen=True)
class ImportJobView:
    id: int
    status: str
    filename: str
    rows_done: int
    rows_total: int
    counts: dict[str, int]
    reasons: dict[str, int]  # rejected rows by code
    flags: dict[str, int]  # stored rows whose phone cannot be texted, by code
    error_code: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


# -- the uploaded file -----------------------------------------------------------------


def stage_upload(source: BinaryIO, max_bytes: int) -> Path:
    """Copy an upload to a private temporary file; UploadTooLarge past `max_bytes`."""
    folder = new_upload_folder()
    target = folder / "upload.csv"
    size = 0
    with target.open("wb") as out:
        while chunk := source.read(COPY_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                out.close()
                shutil.rmtree(folder, ignore_errors=True)
                raise UploadTooLarge(
                    f"the file is over the {max_bytes // (1 << 20)} MB limit: split it",
                    field="file",
                )
            out.write(chunk)
    return target


def check_upload(sessions: Sessions, account: AccountRef, path: Path, req: ImportRequest) -> None:
    """Refuse at once what cannot import: an empty or binary file, an unknown encoding, a
    header without an email or phone column or with a column nobody mapped. The checks
    are the importer's own; what only reading the whole file shows fails the job."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head.strip():
        raise InvalidInput("the file is empty", code="empty_file", field="file")
    if b"\x00" in head:
        raise InvalidInput(
            "the file is not CSV text (it holds NUL bytes)", code="not_csv", field="file"
        )
    mapping = _field("map", parse_mappings, req.mapping)
    try:  # a text encoding, not one of codecs' others (rot13, zlib...)
        io.TextIOWrapper(io.BytesIO(), encoding=req.encoding)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        raise InvalidInput(
            f"unknown encoding {req.encoding!r}", code="bad_encoding", field="encoding"
        ) from None
    header = _header(path, req)
    if header is None:
        return  # undecodable or oddly delimited: the job names the line and byte
    with sessions.begin() as session:
        contacts = Contacts(session, resolve_account(session, account).id)
        fields = {key: f.type for key, f in contacts.custom_fields().items()}
    _field("file", build_map, header, mapping, fields)


def _header(path: Path, req: ImportRequest) -> list[str] | None:
    if len(req.delimiter) != 1 or req.delimiter in '\r\n"':
        return None
    try:
        with path.open(encoding=req.encoding, newline="") as handle:
            first = next(read_rows(handle, req.delimiter), None)
    except (UnicodeDecodeError, ValueError):
        return None
    if first is None or first[1] is None:
        raise InvalidInput("the file has no header row", code="empty_file", field="file")
    return first[1]


def _field(name: str, check: Any, *args: Any) -> Any:
    """Run one of the importer's checks, naming the form field its error is about."""
    try:
        return check(*args)
    except InvalidInput as exc:
        exc.field = exc.field or name
        raise


# -- starting and reading jobs ---------------------------------------------------------


def start_import(
    sessions: Sessions, account: AccountRef, path: Path, filename: str, req: ImportRequest
) -> ImportJobView:
    """Queue the staged file for import; the job owns (and removes) the file from here."""
    try:
        with sessions.begin() as session:
            account_id = resolve_account(session, account).id
            job = ImportJob(
                account_id=account_id,
                status="queued",
                filename=filename[:255],
                options=_options_json(req),
                counts={},
                owner=owner(),
                heartbeat_at=datetime.now(UTC),
            )
            session.add(job)
            session.flush()
            view = _view(job)
    except BaseException:
        discard_upload(path)
        raise
    runner().submit(Live(sessions, view.id, account_id, path, req))
    return view


def get_import(sessions: Sessions, account: AccountRef, job_id: int) -> ImportJobView:
    with sessions.begin() as session:
        job = _job(session, account, job_id)
        return _live_view(job)


def list_imports(
    sessions: Sessions, account: AccountRef, *, before: int | None, limit: int
) -> list[ImportJobView]:
    """Up to `limit + 1` import jobs of the account, newest first."""
    with sessions.begin() as session:
        account_id = resolve_account(session, account).id
        query = select(ImportJob).where(ImportJob.account_id == account_id)
        jobs = list(session.scalars(newest_first(query, ImportJob.id, before, limit + 1)))
        _fail_abandoned(jobs)
        return [_live_view(job) for job in jobs]


def rejected_report(sessions: Sessions, account: AccountRef, job_id: int) -> bytes:
    """The rejected (and flagged) rows of a finished import as CSV, header first."""
    with sessions.begin() as session:
        job = _job(session, account, job_id)
        if job.status != "done":
            raise ImportNotDone(f"import {job.id} is {job.status}: it has no report")
        return zlib.decompress(job.report) if job.report else b""


def _job(session: Session, account: AccountRef, job_id: int) -> ImportJob:
    account_id = resolve_account(session, account).id
    job = session.scalars(
        select(ImportJob).where(ImportJob.id == job_id, ImportJob.account_id == account_id)
    ).first()
    if job is None:
        raise NotFound(f"no import {job_id} in this account")
    _fail_abandoned([job])
    return job


def _fail_abandoned(jobs: Iterable[ImportJob]) -> None:
    now = datetime.now(UTC)
    for job in jobs:
        if job.status in ("queued", "running") and not owner_alive(job, now):
            job.status = "failed"
            job.error_code = "import_abandoned"
            job.error = (
                f"the server process importing the file stopped before it finished; "
                f"{NOTHING_IMPORTED}: upload the file again"
            )
            job.finished_at = now


def _view(job: ImportJob) -> ImportJobView:
    counts: dict[str, Any] = job.counts or {}
    return ImportJobView(
        id=job.id,
        status=job.status,
        filename=job.filename,
        rows_done=job.rows_done,
        rows_total=job.rows_total,
        counts={key: int(counts.get(key, 0)) for key in COUNTS},
        reasons=dict(counts.get("reasons", {})),
        flags=dict(counts.get("flags", {})),
        error_code=job.error_code,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def _live_view(job: ImportJob) -> ImportJobView:
    view = _view(job)
    progress = runner().progress(job.id) if job.status == "running" else None
    if progress is None or progress[0] <= view.rows_done:
        return view
    return replace(view, rows_done=progress[0], rows_total=progress[1])


def _options_json(req: ImportRequest) -> dict[str, Any]:
    return {
        "map": list(req.mapping),
        "encoding": req.encoding,
        "delimiter": req.delimiter,
        "disclosure": req.disclosure,
        "consent_source": req.consent_source,
    }


__all__ = [
    "ImportJobView",
    "ImportNotDone",
    "ImportRequest",
    "UploadTooLarge",
    "check_upload",
    "discard_upload",
    "get_import",
    "list_imports",
    "rejected_report",
    "stage_upload",
    "start_import",
]
