"""Automations as the API reads them: pages of the account's automations with their run
counts, one automation with what each step has done, and its versions.

Lists are keyset pages (newest first, ids below a cursor), each a fixed number of
queries however long the page: the run counts of a page's automations are one grouped
query, not one per row. The API passes the key's account id; every query is scoped to it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import desc, func, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.automations import Automations
from sendline.engine.step_graph import StepLine, outline
from sendline.services.automations import RunFailure, latest_failures
from sendline.store.engine_models import (
    MESSAGE_STATUSES,
    RUN_STATUSES,
    Automation,
    AutomationRun,
    AutomationVersion,
    Message,
)


@dataclass(frozen=True, slots=True)
class AutomationRow:
    id: int
    name: str
    status: str
    trigger_type: str
    trigger_key: str | None
    version: int
    runs: dict[str, int]  # every run status, 0 included
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StepStats:
    """One step of the current version and what its runs and messages are now."""

    line: StepLine
    waiting: int  # active runs whose next step is this one
    messages: dict[str, int]  # the step's messages (every version) by status, 0 included
    held: dict[str, int]  # its held messages by hold reason


@dataclass(frozen=True, slots=True)
class AutomationFull:
    row: AutomationRow
    reentry: str
    transactional: bool
    definition: dict[str, Any]  # as stored: step ids filled in
    steps: tuple[StepStats, ...]
    failures: tuple[RunFailure, ...]  # the latest failed runs, newest first
    problems: tuple[str, ...]  # what a save would refuse today (saved before a new check)


@dataclass(frozen=True, slots=True)
class VersionRow:
    id: int
    number: int
    current: bool
    created_at: datetime
    definition: dict[str, Any]


def page_automations(
    sessions: sessionmaker[Session],
    account_id: int,
    *,
    limit: int,
    before: int | None = None,
    status: str | None = None,
) -> list[AutomationRow]:
    """Up to `limit` automations, newest first, with ids below `before`."""
    query = _rows(account_id)
    if status is not None:
        query = query.where(Automation.status == status)
    if before is not None:
        query = query.where(Automation.id < before)
    with sessions.begin() as session:
        found = session.execute(query.order_by(desc(Automation.id)).limit(limit)).all()
        counts = _run_counts(session, [automation.id for automation, _ in found])
        return [_row(automation, number, counts[automation.id]) for automation, number in found]


def automation_row(
    sessions: sessionmaker[Session], account_id: int, automation_id: int
) -> AutomationRow:
    """One automation of the account (NotFound for another account's)."""
    with sessions.begin() as session:
        return _one_row(session, account_id, automation_id)


def automation_full(
    sessions: sessionmaker[Session], account_id: int, automation_id: int, *, failures: int = 5
) -> AutomationFull:
    """An automation with its step graph, each step's runs and messages, and why its
    latest runs failed (what `sendline automations show` prints)."""
    with sessions.begin() as session:
        automations = Automations(session, account_id)
        found = automations.get(automation_id)
        version = automations.version(found)
        definition = automations.definition(found)
        row = _one_row(session, account_id, found.id)
        return AutomationFull(
            row=row,
            reentry=definition.reentry,
            transactional=definition.transactional,
            definition=dict(version.definition),
            steps=_step_stats(session, account_id, found.id, outline(definition)),
            failures=latest_failures(session, found.id, failures),
            problems=tuple(definition.graph.problems()),
        )


def page_versions(
    sessions: sessionmaker[Session],
    account_id: int,
    automation_id: int,
    *,
    limit: int,
    before: int | None = None,
) -> list[VersionRow]:
    """The automation's versions, newest first (NotFound for another account's)."""
    with sessions.begin() as session:
        found = Automations(session, account_id).get(automation_id)
        query = select(AutomationVersion).where(AutomationVersion.automation_id == found.id)
        if before is not None:
            query = query.where(AutomationVersion.id < before)
        versions = session.scalars(query.order_by(desc(AutomationVersion.id)).limit(limit))
        return [
            VersionRow(v.id, v.number, v.id == found.current_version_id, v.created_at, v.definition)
            for v in versions
        ]


# -- internals ---------------------------------------------------------------------------


def _rows(account_id: int) -> Any:
    return (
        select(Automation, AutomationVersion.number)
        .outerjoin(AutomationVersion, AutomationVersion.id == Automation.current_version_id)
        .where(Automation.account_id == account_id)
    )


def _one_row(session: Session, account_id: int, automation_id: int) -> AutomationRow:
    found = Automations(session, account_id).get(automation_id)  # NotFound across accounts
    automation, number = session.execute(_rows(account_id).where(Automation.id == found.id)).one()
    return _row(automation, number, _run_counts(session, [found.id])[found.id])


def _row(automation: Automation, number: int | None, runs: dict[str, int]) -> AutomationRow:
    return AutomationRow(
        id=automation.id,
        name=automation.name,
        status=automation.status,
        trigger_type=automation.trigger_type,
        trigger_key=automation.trigger_key,
        version=number or 0,
        runs=runs,
        created_at=automation.created_at,
        updated_at=automation.updated_at,
    )


def _run_counts(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {i: dict.fromkeys(RUN_STATUSES, 0) for i in ids}
    if not ids:
        return counts
    rows = session.execute(
        select(AutomationRun.automation_id, AutomationRun.status, func.count())
        .where(AutomationRun.automation_id.in_(ids))
        .group_by(AutomationRun.automation_id, AutomationRun.status)
    )
    for automation_id, status, count in rows:
        counts[automation_id][str(status)] = int(count)
    return counts


def _step_stats(
    session: Session, account_id: int, automation_id: int, lines: tuple[StepLine, ...]
) -> tuple[StepStats, ...]:
    waiting = {
        step_id: int(count)
        for step_id, count in session.execute(
            select(AutomationRun.step_id, func.count())
            .where(AutomationRun.automation_id == automation_id, AutomationRun.status == "active")
            .group_by(AutomationRun.step_id)
        )
    }
    messages: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(MESSAGE_STATUSES, 0))
    held: dict[str, dict[str, int]] = defaultdict(dict)
    rows = session.execute(
        select(Message.step_id, Message.status, Message.held_reason, func.count())
        .where(Message.account_id == account_id, Message.automation_id == automation_id)
        .group_by(Message.step_id, Message.status, Message.held_reason)
    )
    for step_id, status, reason, count in rows:
        key = step_id or ""
        messages[key][status] = messages[key].get(status, 0) + int(count)
        if status == "held" and reason:
            held[key][reason] = held[key].get(reason, 0) + int(count)
    return tuple(
        StepStats(
            line=line,
            waiting=waiting.get(line.id, 0),
            messages=dict(messages[line.id]),
            held=dict(sorted(held[line.id].items(), key=lambda item: -item[1])),
        )
        for line in lines
    )
