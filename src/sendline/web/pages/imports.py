"""Importing contacts from a CSV file: the upload form, then the job's page with a
progress bar htmx refreshes every second while it runs, its counts, and the rows it
rejected or flagged as a CSV report.

The flow is the API's (`api/v1/imports.py`): stage the upload under the operator's
limit (SENDLINE_MAX_UPLOAD_MB), refuse at once what cannot import (an empty or binary
file, a header without a phone or email column), then import in the background with
the CLI's own import: all or nothing, tags and lists starting their automations.
"""

# No `from __future__ import annotations`: FastAPI evaluates `Depends(web.user)` in router().
import csv
import io
import itertools
import os
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sendline.errors import SendlineError
from sendline.services import import_jobs
from sendline.services.import_jobs import ImportRequest
from sendline.services.users import WebUser
from sendline.web.context import PREFIX, Form, Web
from sendline.web.pages.contact_page import object_id

RECENT = 10  # imports listed under the form
PREVIEW = 50  # rows of the rejected-rows report shown on the job page
MAX_DISCLOSURE = 5000
MAX_SOURCE = 200
MAX_MAPPINGS = 100
ENCODINGS = [
    ("utf-8-sig", "UTF-8 (most files)"),
    ("cp1252", "Windows (Excel, Western Europe)"),
    ("latin-1", "Latin-1 (ISO 8859-1)"),
    ("utf-16", "UTF-16"),
]
DELIMITERS = [(",", "Comma ,"), (";", "Semicolon ;"), ("tab", "Tab"), ("|", "Pipe |")]
# What each count means, in the order the job page lists them.
COUNT_LABELS = {
    "created": "created",
    "updated": "updated",
    "unchanged": "unchanged",
    "rejected": "rejected (not imported)",
    "flagged": "flagged (imported, phone cannot be texted)",
    "consent_events": "consent events recorded",
    "runs_started": "automation runs started",
}


def router(web: Web) -> APIRouter:
    pages = APIRouter()
    User = Annotated[WebUser, Depends(web.user)]
    max_upload = web.settings.max_upload_mb << 20

    @pages.get(PREFIX + "/contacts/import", response_class=HTMLResponse)
    def import_form(request: Request, user: User) -> HTMLResponse:
        defaults = Form(values={"encoding": "utf-8-sig", "delimiter": ","})
        return _form_page(web, request, user, defaults)

    @pages.post(PREFIX + "/contacts/import", response_class=HTMLResponse, response_model=None)
    def start(
        request: Request, user: User, form: Annotated[Form, Depends(web.form)]
    ) -> HTMLResponse | RedirectResponse:
        req = _request(form)
        upload = form.files.get("file")
        if upload is None or not upload.filename:
            form.errors.setdefault("file", "choose a CSV file to import")
        if not form.ok or upload is None:
            return _form_page(web, request, user, form, status_code=400)
        try:
            path = import_jobs.stage_upload(upload.file, max_upload)
            try:
                import_jobs.check_upload(web.sessions, user.account_id, path, req)
            except BaseException:
                import_jobs.discard_upload(path)
                raise
        except SendlineError as exc:
            form.fail(exc, "file")
            return _form_page(web, request, user, form, status_code=400)
        name = os.path.basename((upload.filename or "").replace("\x00", "")) or "upload.csv"
        job = import_jobs.start_import(web.sessions, user.account_id, path, name, req)
        return RedirectResponse(f"{PREFIX}/contacts/imports/{job.id}", status_code=303)

    @pages.get(PREFIX + "/contacts/imports/{import_id}", response_class=HTMLResponse)
    def job_page(request: Request, import_id: str, user: User) -> HTMLResponse:
        job = import_jobs.get_import(web.sessions, user.account_id, object_id(import_id, "import"))
        # htmx polls for the progress fragment alone; a person gets the whole page.
        fragment = request.headers.get("HX-Request") == "true"
        flagged = job.counts["rejected"] + job.counts["flagged"]
        report = _preview(web, user, job.id) if job.status == "done" and flagged else []
        return web.render(
            request,
            "import_progress.html" if fragment else "import_job.html",
            user,
            active="contacts",
            job=job,
            labels=COUNT_LABELS,
            report=report,
        )

    @pages.get(PREFIX + "/contacts/imports/{import_id}/rejected.csv")
    def rejected(import_id: str, user: User) -> Response:
        job_id = object_id(import_id, "import")
        report = import_jobs.rejected_report(web.sessions, user.account_id, job_id)
        name = f"import-{job_id}-rejected.csv"
        return Response(
            report,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return pages


def _preview(web: Web, user: WebUser, job_id: int) -> list[list[str]]:
    """The report's first rows (line, code, reason, outcome) to show on the page."""
    text = import_jobs.rejected_report(web.sessions, user.account_id, job_id)
    rows = list(
        itertools.islice(csv.reader(io.StringIO(text.decode("utf-8", "replace"))), PREVIEW + 1)
    )
    return [row[:4] for row in rows[1:] if len(row) >= 4]


def _request(form: Form) -> ImportRequest:
    """The import's options from the form, each bad one refused beside its field."""
    mapping = [line.strip() for line in form.get("map").splitlines() if line.strip()]
    if len(mapping) > MAX_MAPPINGS:
        form.errors["map"] = f"at most {MAX_MAPPINGS} column mappings"
    # Absent (a script's post) is the default; sent but blank is a mistake to show.
    chosen = form.get("delimiter", ",")
    delimiter = {"tab": "\t"}.get(chosen, chosen)
    if len(delimiter) != 1 or delimiter in '\r\n"':
        form.errors["delimiter"] = "choose the column separator from the list"
    for key, limit in (("disclosure", MAX_DISCLOSURE), ("consent_source", MAX_SOURCE)):
        if len(form.get(key).strip()) > limit:
            form.errors[key] = f"at most {limit} characters"
    encoding = form.get("encoding", "utf-8-sig").strip()
    if not encoding or len(encoding) > 40:
        form.errors["encoding"] = "choose the file's encoding from the list"
    return ImportRequest(
        mapping=mapping,
        encoding=encoding or "utf-8-sig",
        delimiter=delimiter if len(delimiter) == 1 else ",",
        disclosure=form.get("disclosure").strip() or None,
        consent_source=form.get("consent_source").strip() or None,
    )


def _form_page(
    web: Web, request: Request, user: WebUser, form: Form, *, status_code: int = 200
) -> HTMLResponse:
    recent = import_jobs.list_imports(web.sessions, user.account_id, before=None, limit=RECENT)
    return web.render(
        request,
        "import.html",
        user,
        status_code=status_code,
        active="contacts",
        form=form,
        recent=recent[:RECENT],
        encodings=ENCODINGS,
        delimiters=DELIMITERS,
        max_mb=web.settings.max_upload_mb,
    )
