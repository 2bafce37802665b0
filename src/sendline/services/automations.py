"""Automations as a user works with them: save, list, show, switch on and off, start a
blast, pre-flight it, send a custom event, and the JSON Schema of the format.

Each function runs in one transaction of its own and returns plain values; the CLI (and
later the API and web pages) only parse their input, call one, and print the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import desc, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.actions import Actions
from sendline.engine.automations import Automations, Saved
from sendline.engine.conditions import segment_from_data
from sendline.engine.definitions import AutomationDefinition, Condition
from sendline.engine.preflight import PreflightReport, preflight
from sendline.engine.step_graph import StepLine, outline
from sendline.engine.triggers import listening, start_bulk
from sendline.services import AccountRef, resolve_account
from sendline.sms.links import ShortenerList
from sendline.store.contacts import Contacts
from sendline.store.engine_models import Automation, AutomationRun

Lifecycle = Literal["activate", "pause", "archive"]


@dataclass(frozen=True, slots=True)
class SavedAutomation:
    id: int
    name: str
    status: str
    version: int
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AutomationSummary:
    id: int
    name: str
    status: str
    trigger: str
    version: int
    active_runs: int
    done_runs: int  # completed or exited
    failed_runs: int


@dataclass(frozen=True, slots=True)
class RunFailure:
    run_id: int
    contact_id: int
    failed_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class AutomationDetail:
    id: int
    name: str
    status: str
    trigger: str
    reentry: str
    transactional: bool
    version: int
    runs: dict[str, int]  # by status
    failures: tuple[RunFailure, ...]  # the latest, newest first
    steps: tuple[StepLine, ...]  # the step graph, branches indented
    problems: tuple[str, ...]  # what a save would refuse today (a version saved before)
    definition: AutomationDefinition


@dataclass(frozen=True, slots=True)
class AutomationState:
    id: int
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class BlastStarted:
    automation_id: int
    name: str
    started: int


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What an event did; when it started no run, `reasons` says why, naming automations."""

    name: str
    contact_id: int
    started: int
    reasons: tuple[str, ...]


# -- saving ------------------------------------------------------------------------------


def create_automation(
    sessions: sessionmaker[Session],
    account: AccountRef,
    source: str | Mapping[str, Any],
    *,
    shorteners: ShortenerList | None = None,
) -> SavedAutomation:
    """Save a new draft automation from YAML/JSON text or a mapping."""
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        return _saved(Automations(session, owner.id, shorteners=shorteners).create(source))


def update_automation(
    sessions: sessionmaker[Session],
    account: AccountRef,
    ref: str,
    source: str | Mapping[str, Any],
    *,
    shorteners: ShortenerList | None = None,
) -> SavedAutomation:
    """Change an automation: a new version; running contacts finish on theirs."""
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        return _saved(Automations(session, owner.id, shorteners=shorteners).update(ref, source))


def _saved(saved: Saved) -> SavedAutomation:
    found = saved.automation
    return SavedAutomation(found.id, found.name, found.status, saved.version.number, saved.warnings)


# -- reading -----------------------------------------------------------------------------


def list_automations(
    sessions: sessionmaker[Session], account: AccountRef
) -> list[AutomationSummary]:
    with sessions.begin() as session:
        automations = Automations(session, resolve_account(session, account).id)
        found = []
        for item in automations.list():
            runs = automations.run_counts(item.id)
            found.append(
                AutomationSummary(
                    id=item.id,
                    name=item.name,
                    status=item.status,
                    trigger=_trigger(item),
                    version=automations.version(item).number,
                    active_runs=runs.get("active", 0),
                    done_runs=runs.get("completed", 0) + runs.get("exited", 0),
                    failed_runs=runs.get("failed", 0),
                )
            )
        return found


def show_automation(
    sessions: sessionmaker[Session], account: AccountRef, ref: str, *, failures: int = 5
) -> AutomationDetail:
    """An automation: its settings, its step graph, its runs and why the latest failed."""
    with sessions.begin() as session:
        automations = Automations(session, resolve_account(session, account).id)
        found = automations.resolve(ref)
        definition = automations.definition(found)
        return AutomationDetail(
            id=found.id,
            name=found.name,
            status=found.status,
            trigger=_trigger(found),
            reentry=definition.reentry,
            transactional=definition.transactional,
            version=automations.version(found).number,
            runs=automations.run_counts(found.id),
            failures=latest_failures(session, found.id, failures),
            steps=outline(definition),
            problems=tuple(definition.graph.problems()),
            definition=definition,
        )


def latest_failures(session: Session, automation_id: int, limit: int) -> tuple[RunFailure, ...]:
    """The automation's latest failed runs, newest first, with the reason stored on each."""
    rows = session.execute(
        select(
            AutomationRun.id,
            AutomationRun.contact_id,
            AutomationRun.updated_at,
            AutomationRun.error,
        )
        .where(AutomationRun.automation_id == automation_id, AutomationRun.status == "failed")
        .order_by(desc(AutomationRun.updated_at), desc(AutomationRun.id))
        .limit(limit)
    )
    return tuple(
        RunFailure(run_id, contact_id, failed_at, error or "no reason recorded")
        for run_id, contact_id, failed_at, error in rows
    )


def _trigger(automation: Automation) -> str:
    key = f" {automation.trigger_key}" if automation.trigger_key else ""
    return f"{automation.trigger_type}{key}"


def automation_schema() -> dict[str, Any]:
    """The JSON Schema of a definition, from the models that validate it (cannot drift)."""
    schema: dict[str, Any] = AutomationDefinition.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Sendline automation"
    return schema


# -- lifecycle and starting --------------------------------------------------------------


def change_status(
    sessions: sessionmaker[Session], account: AccountRef, ref: str | int, action: Lifecycle
) -> AutomationState:
    """Activate (R1 checked), pause or archive an automation (an int `ref` is its id)."""
    with sessions.begin() as session:
        automations = Automations(session, resolve_account(session, account).id)
        changed: Automation = getattr(automations, action)(ref)
        return AutomationState(changed.id, changed.name, changed.status)


def start_blast(
    sessions: sessionmaker[Session],
    account: AccountRef,
    ref: str,
    *,
    segment: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> BlastStarted:
    """Enroll every contact of the segment now (a bulk start); the worker sends."""
    condition = _segment(segment)
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        found = Automations(session, owner.id).resolve(ref)
        moment = now or datetime.now(UTC)
        started = start_bulk(session, owner.id, found.id, now=moment, segment=condition)
        return BlastStarted(found.id, found.name, started)


def preflight_automation(
    sessions: sessionmaker[Session],
    account: AccountRef,
    ref: str,
    *,
    segment: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    shorteners: ShortenerList | None = None,
) -> PreflightReport:
    """Who the automation would text now, who would be held and why; reads only."""
    condition = _segment(segment)
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        moment = now or datetime.now(UTC)
        report = preflight(
            session, owner.id, ref, segment=condition, now=moment, shorteners=shorteners
        )
        session.rollback()  # reads only, and says so
        return report


def _segment(data: Mapping[str, Any] | None) -> Condition | None:
    return None if data is None else segment_from_data(dict(data))


# -- events ------------------------------------------------------------------------------


def send_event(
    sessions: sessionmaker[Session],
    account: AccountRef,
    contact: str,
    name: str,
    payload: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> EventOutcome:
    """Record a custom event for a contact; automations listening for it start."""
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        return _record_event(session, owner.id, contact, name, payload, now)


def send_account_event(
    sessions: sessionmaker[Session],
    account_id: int,
    contact: str,
    name: str,
    payload: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> EventOutcome:
    """`send_event` for an account known by id (an API key's): no name lookup, so an
    account named like another's id can never be picked by mistake."""
    with sessions.begin() as session:
        return _record_event(session, account_id, contact, name, payload, now)


def _record_event(
    session: Session,
    account_id: int,
    contact: str,
    name: str,
    payload: Mapping[str, Any] | None,
    now: datetime | None,
) -> EventOutcome:
    found = Contacts(session, account_id).resolve(contact)
    moment = now or datetime.now(UTC)
    started = Actions(session, account_id, now=moment).record_event(found.id, name, payload)
    reasons = () if started else _why_none(session, account_id, found.id, name)
    return EventOutcome(name, found.id, started, reasons)


def _why_none(session: Session, account_id: int, contact_id: int, name: str) -> tuple[str, ...]:
    """Why an event started no run: nobody listens, or everyone listening has the contact."""
    key = name.strip()
    active = [automation for automation, _ in listening(session, account_id, "event", key)]
    if not active:
        others = session.scalars(
            select(Automation).where(
                Automation.account_id == account_id,
                Automation.trigger_type == "event",
                Automation.trigger_key == key,
            )
        ).all()
        if not others:
            return (f"no automation listens to event {key!r}",)
        return tuple(
            f"no active automation listens to event {key!r}: {a.name!r} is {a.status}"
            for a in others
        )
    enrolled = set(
        session.scalars(
            select(AutomationRun.enrollment_key).where(
                AutomationRun.enrollment_key.in_([f"{a.id}:{contact_id}" for a in active])
            )
        )
    )
    return tuple(
        f"the contact is already enrolled in {a.name!r} and its re-entry is once"
        if f"{a.id}:{contact_id}" in enrolled
        else f"{a.name!r} did not enroll the contact (automations chained too deep)"
        for a in active
    )
