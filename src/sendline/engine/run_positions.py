"""A run's position while the runner advances it, and how a batch's positions are read
and written back: one SELECT of plain columns in, a handful of UPDATEs out."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from sendline.store.batch_filter import among
from sendline.store.engine_models import AutomationRun

RUN_COLUMNS = [
    getattr(AutomationRun, name)
    for name in "id account_id automation_id version_id contact_id step_id steps_done due_at "
    "wait_until context created_at".split()
]
# What a batch changes, written back in one go.
_POSITION = ("status", "step_id", "steps_done", "due_at", "wait_until", "error")


@dataclass(slots=True)
class RunState:
    """A run's position while a batch advances it; written back in one bulk UPDATE."""

    id: int
    account_id: int
    automation_id: int
    version_id: int
    contact_id: int
    step_id: str | None
    steps_done: int
    due_at: datetime | None
    wait_until: datetime | None
    context: dict[str, Any]
    created_at: datetime
    status: str = "active"
    error: str | None = None

    def end(self, status: str, error: str | None = None) -> None:
        self.status, self.error = status, error
        self.step_id = self.due_at = self.wait_until = None

    def position(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _POSITION)


def write_back(session: Session, runs: list[RunState], now: datetime) -> None:
    """Store the runs' new positions: one UPDATE per distinct position.

    A campaign moves thousands of runs to the same place (all completed, all waiting
    until the same moment), so grouping makes a batch a handful of statements; when
    positions are mostly distinct it falls back to one executemany by primary key.
    """
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for run in runs:
        groups[run.position()].append(run.id)
    stamp = {"updated_at": now}
    if len(groups) * 4 > len(runs):
        rows = [
            {"id": run.id, **dict(zip(_POSITION, run.position(), strict=True)), **stamp}
            for run in runs
        ]
        session.execute(update(AutomationRun), rows)
        return
    for position, ids in groups.items():
        session.execute(
            update(AutomationRun)
            .where(among(session, AutomationRun.id, ids))
            .values(**dict(zip(_POSITION, position, strict=True)), **stamp)
            .execution_options(synchronize_session=False)
        )
