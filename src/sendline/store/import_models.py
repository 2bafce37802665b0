"""Import jobs: a CSV upload imported in the background (`POST /api/v1/imports`).

The row is the job's whole state, so any process can answer `GET /imports/{id}`: its
status, progress (rows done of rows expected), counts once done, the reason when it
failed, and the rejected-rows report (zlib-compressed CSV, loaded only when asked for).
`owner` and `heartbeat_at` tell a job whose process died from one still running (see
`services/import_jobs.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, deferred, mapped_column

from sendline.store.models import Base, _in
from sendline.store.types import utcnow

IMPORT_STATUSES = ("queued", "running", "done", "failed")


class ImportJob(Base):
    __tablename__ = "import_jobs"
    __table_args__ = (
        CheckConstraint(_in("status", IMPORT_STATUSES), name="status"),
        Index("ix_import_jobs_account_id_id", "account_id", "id"),
        Index("ix_import_jobs_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10), default="queued")
    filename: Mapped[str] = mapped_column(String(255))
    options: Mapped[dict[str, Any]]  # the import options (mapping, encoding, disclosure...)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]]  # created, updated... and rejection reasons, once done
    error_code: Mapped[str | None] = mapped_column(String(50))
    error: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(255))  # "host:pid" of the process running it
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    report: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
