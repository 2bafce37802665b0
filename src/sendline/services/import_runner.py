"""The thread that runs import jobs in the serving process, and how a job's owner is
known to be alive (see `services/import_jobs.py` for the whole story).

A job runs `services.contacts.import_contacts`, the very import `sendline contacts
import` runs; its outcome is written by `_finish` inside the import's transaction, so
a job is `done` exactly when its contacts are committed.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import socket
import tempfile
import threading
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import SendlineError
from sendline.importing.importer import ImportOptions, ImportReport
from sendline.services import contacts as contacts_service
from sendline.store.import_models import ImportJob

log = logging.getLogger(__name__)

Sessions = sessionmaker[Session]
HEARTBEAT_SECONDS = 5.0
STALE_AFTER = timedelta(seconds=60)  # twelve missed heartbeats: the owner is gone
NOTHING_IMPORTED = "nothing was imported"
UPLOAD_PREFIX = "sendline-import-"


@dataclass(frozen=True)
class ImportRequest:
    """The options of `sendline contacts import` a client may set."""

    mapping: list[str] = field(default_factory=list)
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    disclosure: str | None = None
    consent_source: str | None = None


COUNTS = (
    "created",
    "updated",
    "unchanged",
    "rejected",
    "flagged",
    "consent_events",
    "runs_started",
)


def discard_upload(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


# -- who runs a job --------------------------------------------------------------------


def owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_started(pid)}"


def _started(pid: int) -> str:
    """When the process started (clock ticks since boot, Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0"
    return stat.rpartition(")")[2].split()[19]


def owner_alive(job: ImportJob, now: datetime) -> bool:
    host, _, rest = job.owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return now - job.heartbeat_at < STALE_AFTER
    pid = int(pid_text)
    return _pid_alive(pid) and (started == "0" or _started(pid) == started)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    return True


def new_upload_folder() -> Path:
    """A private folder for one upload, named after this process (see `_sweep_uploads`)."""
    return Path(tempfile.mkdtemp(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-"))


def _sweep_uploads() -> None:
    """Remove the upload folders of processes killed mid-import (nothing else would)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{UPLOAD_PREFIX}*"):
        pid = folder.name.removeprefix(UPLOAD_PREFIX).partition("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


# -- running jobs ----------------------------------------------------------------------


@dataclass
class Live:
    """A job this process was given, and its progress while it runs."""

    sessions: Sessions
    job_id: int
    account_id: int
    path: Path
    req: ImportRequest
    done: int = 0
    total: int = 0

    def update(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    @property
    def beats(self) -> bool:
        """Whether heartbeats and progress can be written (not on SQLite: see the top)."""
        bind = self.sessions.kw.get("bind")
        return bind is not None and bind.dialect.name != "sqlite"


class _Runner:
    """The process's import thread, and the thread that writes its jobs' heartbeats."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Live] = queue.Queue()
        self._jobs: dict[int, Live] = {}
        self._lock = threading.Lock()
        _sweep_uploads()
        for target, name in ((self._work, "import"), (self._beat, "import-heartbeat")):
            threading.Thread(target=target, name=f"sendline-{name}", daemon=True).start()

    def submit(self, live: Live) -> None:
        with self._lock:
            self._jobs[live.job_id] = live
        self._queue.put(live)

    def progress(self, job_id: int) -> tuple[int, int] | None:
        live = self._jobs.get(job_id)
        return (live.done, live.total) if live is not None else None

    def _work(self) -> None:
        while True:
            live = self._queue.get()
            try:
                _run(live)
            except Exception:  # noqa: BLE001 - the thread must outlive any one job
                log.exception("import job %s could not be started", live.job_id)
                try:
                    _fail(live, "import_failed", f"the import could not start; {NOTHING_IMPORTED}")
                except SQLAlchemyError:
                    log.exception("import job %s could not be marked failed", live.job_id)
            finally:
                discard_upload(live.path)
                with self._lock:
                    self._jobs.pop(live.job_id, None)

    def _beat(self) -> None:
        while True:
            threading.Event().wait(HEARTBEAT_SECONDS)
            with self._lock:
                jobs = [live for live in self._jobs.values() if live.beats]
            for live in jobs:
                try:
                    _heartbeat(live)
                except SQLAlchemyError:  # the database is away: the next beat may do
                    log.warning("no heartbeat for import job %s", live.job_id)


_RUNNER: _Runner | None = None
_RUNNER_LOCK = threading.Lock()


def runner() -> _Runner:
    global _RUNNER
    with _RUNNER_LOCK:
        if _RUNNER is None:
            _RUNNER = _Runner()
        return _RUNNER


def _heartbeat(live: Live) -> None:
    with live.sessions.begin() as session:
        job = session.get(ImportJob, live.job_id)
        if job is None or job.status not in ("queued", "running"):
            return
        job.heartbeat_at = datetime.now(UTC)
        if live.done > job.rows_done:
            job.rows_done, job.rows_total = live.done, live.total


def _run(live: Live) -> None:
    with live.sessions.begin() as session:
        job = session.get(ImportJob, live.job_id)
        if job is None or job.status != "queued":
            return
        job.status, job.started_at = "running", datetime.now(UTC)
        job.heartbeat_at = job.started_at
    report_path = live.path.with_name("rejects.csv")
    options = ImportOptions(
        mapping=list(live.req.mapping),
        encoding=live.req.encoding,
        delimiter=live.req.delimiter,
        disclosure=live.req.disclosure,
        consent_source=live.req.consent_source,
        report_path=report_path,
    )

    def finish(session: Session, report: ImportReport) -> None:
        _finish(session, live.job_id, report, report_path)

    try:
        contacts_service.import_contacts(
            live.sessions, live.account_id, live.path, options, live.update, finish
        )
    except SendlineError as exc:
        _fail(live, exc.code, f"{exc.message}; {NOTHING_IMPORTED}")
    except Exception as exc:  # noqa: BLE001 - recorded on the job, never lost
        log.exception("import job %s failed", live.job_id)
        reason = f"the import failed ({type(exc).__name__}); {NOTHING_IMPORTED}"
        _fail(live, "import_failed", reason)


def _finish(session: Session, job_id: int, report: ImportReport, report_path: Path) -> None:
    job = session.get(ImportJob, job_id)
    if job is None:
        return
    counts: dict[str, Any] = {key: getattr(report, key) for key in COUNTS}
    counts["reasons"] = dict(report.reasons)
    counts["flags"] = dict(report.flags)
    job.counts = counts
    job.status = "done"
    job.rows_done = job.rows_total = report.rows
    job.finished_at = datetime.now(UTC)
    job.report = zlib.compress(report_path.read_bytes()) if report_path.exists() else None


def _fail(live: Live, code: str, message: str) -> None:
    with live.sessions.begin() as session:
        job = session.get(ImportJob, live.job_id)
        if job is None:
            return
        job.status, job.error_code, job.error = "failed", code[:50], message
        job.rows_done, job.rows_total = live.done, live.total
        job.finished_at = datetime.now(UTC)
