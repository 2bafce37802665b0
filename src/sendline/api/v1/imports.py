"""`/api/v1/imports`: upload a CSV of contacts; it is imported in the background.

`POST /imports` takes the file (multipart field `file`) and the options of `sendline
contacts import` as form fields, checks what it can at once (an empty or binary file,
a header without an email or phone column: 422), and answers 202 with the job. The
job imports all or nothing, like the CLI; `GET /imports/{id}` shows its progress,
counts and, when it failed, why. `GET /imports/{id}/rejected` is the report of the rows
it refused or flagged, as CSV.

The upload is limited to `SENDLINE_MAX_UPLOAD_MB` (default 50) megabytes: 413 past it.
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
import os
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, StringConstraints
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.problems import problem
from sendline.api.v1.auth import Authenticator
from sendline.api.v1.pages import Cursor, Limit, Page, before_id, page_of
from sendline.api.v1.params import ObjectId
from sendline.api.v1.strings import NO_NUL
from sendline.services import import_jobs
from sendline.services.import_jobs import ImportJobView, ImportRequest, UploadTooLarge


class Progress(BaseModel):
    done: int  # rows read and stored so far
    total: int  # rows the file seems to hold (its lines less the header); 0 until known


class ImportCounts(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: int  # not imported: see GET /imports/{id}/rejected
    flagged: int  # imported, but the phone cannot be texted (their messages are held)
    consent_events: int
    runs_started: int  # automation runs the imported tags and lists started


class ImportFailure(BaseModel):
    code: str
    detail: str


class ImportJobOut(BaseModel):
    """An import: queued, running, done (the contacts are committed) or failed
    (nothing was imported; `error` says why)."""

    id: int
    status: Literal["queued", "running", "done", "failed"]
    filename: str
    progress: Progress
    counts: ImportCounts
    rejected_reasons: dict[str, int]  # rejected rows by code
    flagged_reasons: dict[str, int]  # flagged rows by code
    error: ImportFailure | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def job_out(view: ImportJobView) -> ImportJobOut:
    error = None
    if view.error_code is not None:
        error = ImportFailure(code=view.error_code, detail=view.error or view.error_code)
    return ImportJobOut(
        id=view.id,
        status=view.status,  # type: ignore[arg-type]  # the table's check constraint
        filename=view.filename,
        progress=Progress(done=view.rows_done, total=view.rows_total),
        counts=ImportCounts(**view.counts),
        rejected_reasons=view.reasons,
        flagged_reasons=view.flags,
        error=error,
        created_at=view.created_at,
        started_at=view.started_at,
        finished_at=view.finished_at,
    )


def router(sessions: sessionmaker[Session], auth: Authenticator, max_upload: int) -> APIRouter:
    """`max_upload`: bytes of the uploaded file (SENDLINE_MAX_UPLOAD_MB)."""
    routes = APIRouter(tags=["imports"])
    Account = Annotated[int, Depends(auth.account_id)]

    @routes.post(
        "/imports",
        status_code=202,
        response_model=ImportJobOut,
        responses={413: {"description": "The file is over the upload limit."}},
    )
    def post_import(
        account_id: Account,
        file: Annotated[UploadFile, File(description="The CSV file, with a header row.")],
        map: Annotated[
            list[Annotated[str, StringConstraints(min_length=1, max_length=300, pattern=NO_NUL)]]
            | None,
            Form(
                max_length=100,
                description="Column mappings 'Column=target' (email, first_name, last_name, "
                "phone, consent, tags, lists, a custom FIELD_KEY[:number|date|phone], or - "
                "to skip); repeat the field for each.",
            ),
        ] = None,
        disclosure: Annotated[str | None, Form(max_length=5000, pattern=NO_NUL)] = None,
        consent_source: Annotated[str | None, Form(max_length=200, pattern=NO_NUL)] = None,
        encoding: Annotated[str, Form(min_length=1, max_length=40, pattern=NO_NUL)] = "utf-8-sig",
        delimiter: Annotated[str, Form(min_length=1, max_length=1, pattern=NO_NUL)] = ",",
    ) -> ImportJobOut | JSONResponse:
        """Upload a CSV file to import in the background (as `sendline contacts import`,
        all or nothing); 202 with the job to poll."""
        req = ImportRequest(
            mapping=list(map or []),
            encoding=encoding,
            delimiter=delimiter,
            disclosure=disclosure,
            consent_source=consent_source,
        )
        try:
            path = import_jobs.stage_upload(file.file, max_upload)
        except UploadTooLarge as exc:
            return problem(413, exc.code, exc.message, field="file")
        try:
            import_jobs.check_upload(sessions, account_id, path, req)
        except BaseException:
            import_jobs.discard_upload(path)
            raise
        name = os.path.basename((file.filename or "").replace("\x00", "")) or "upload.csv"
        return job_out(import_jobs.start_import(sessions, account_id, path, name, req))

    @routes.get("/imports", response_model=Page[ImportJobOut])
    def get_imports(
        account_id: Account, limit: Limit = 50, cursor: Cursor = None
    ) -> Page[ImportJobOut]:
        """The account's imports, newest first."""
        rows = import_jobs.list_imports(sessions, account_id, before=before_id(cursor), limit=limit)
        return page_of(rows, limit, job_out, lambda r: r.id)

    @routes.get("/imports/{import_id}", response_model=ImportJobOut)
    def get_import(import_id: ObjectId, account_id: Account) -> ImportJobOut:
        """An import's status, progress and counts; why it failed, if it did."""
        return job_out(import_jobs.get_import(sessions, account_id, import_id))

    @routes.get(
        "/imports/{import_id}/rejected",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}, "description": "The report as CSV."}},
    )
    def get_rejected(import_id: ObjectId, account_id: Account) -> Response:
        """The rows a finished import rejected or flagged, as CSV: line, code, reason,
        outcome (rejected / flagged), then the row's own cells. 409 `import_not_done`
        while it runs or when it failed (nothing was imported)."""
        report = import_jobs.rejected_report(sessions, account_id, import_id)
        name = f"import-{import_id}-rejected.csv"
        return Response(
            report,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return routes
