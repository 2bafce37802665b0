"""Automations changed from data (the API's JSON definitions): validate without saving,
save a new one or a new version, pre-flight and bulk-start one known by id.

Definitions go through `automation_checks` (the engine's validator, each problem with
its field), then the engine saves them exactly as `sendline automations create` does.
The account is the API key's, an id; automations are found by id in it only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.automations import Automations
from sendline.engine.conditions import both, segment_query
from sendline.engine.definitions import BulkTrigger
from sendline.engine.preflight import PreflightReport, preflight
from sendline.engine.triggers import start_bulk
from sendline.errors import Conflict
from sendline.services import automation_checks as checks
from sendline.services.automation_checks import FieldMessage
from sendline.sms.links import ShortenerList


@dataclass(frozen=True, slots=True)
class Checked:
    """A definition that would save: what it is, and the warnings worth showing."""

    name: str
    trigger_type: str
    steps: int  # branch steps included
    sms_steps: int
    warnings: tuple[FieldMessage, ...]


@dataclass(frozen=True, slots=True)
class SavedDefinition:
    automation_id: int
    version: int
    warnings: tuple[FieldMessage, ...]


@dataclass(frozen=True, slots=True)
class BulkStart:
    """A bulk start: who the segment holds, how many runs started, why not the others."""

    automation_id: int
    name: str
    audience: int
    started: int
    reasons: tuple[str, ...]


def validate_definition(
    sessions: sessionmaker[Session],
    account_id: int,
    data: Mapping[str, Any],
    *,
    automation_id: int | None = None,
    shorteners: ShortenerList | None = None,
) -> Checked:
    """Check a definition as a save would (a new automation, or a new version of
    `automation_id`), and save nothing (DefinitionInvalid)."""
    with sessions.begin() as session:
        automations = Automations(session, account_id, shorteners=shorteners)
        if automation_id is not None:
            automations.get(automation_id)  # another account's: 404
        definition = checks.parse(data)
        warnings = checks.validate(automations, definition)
        taken = automations.find(definition.name)
    if taken is not None and taken.id != automation_id:
        warnings += (
            FieldMessage(
                "name",
                f"an automation named {definition.name!r} already exists (id {taken.id}): "
                "creating this one would be refused; update that one instead",
            ),
        )
    return Checked(
        name=definition.name,
        trigger_type=definition.trigger.type,
        steps=sum(1 for _ in definition.all_steps()),
        sms_steps=len(definition.sms_bodies()),
        warnings=warnings,
    )


def save_definition(
    sessions: sessionmaker[Session],
    account_id: int,
    data: Mapping[str, Any],
    *,
    automation_id: int | None = None,
    shorteners: ShortenerList | None = None,
) -> SavedDefinition:
    """A new draft automation, or (with `automation_id`) a new version of one: the
    engine's `create` / `update`, after the checks that name each field in error."""
    with sessions.begin() as session:
        automations = Automations(session, account_id, shorteners=shorteners)
        if automation_id is not None:
            automations.get(automation_id)  # another account's: 404 before anything else
        definition = checks.parse(data)
        warnings = checks.validate(automations, definition)
        try:
            if automation_id is None:
                saved = automations.create(definition)
            else:
                saved = automations.update(automation_id, definition)
        except Conflict as exc:
            if exc.code == "conflict":  # the name is taken (not: archived)
                exc.field = "name"
            raise
        except IntegrityError:  # taken meanwhile, by a request saving the same name
            raise Conflict(
                f"an automation named {definition.name!r} already exists", field="name"
            ) from None
        return SavedDefinition(saved.automation.id, saved.version.number, warnings)


def preflight_by_id(
    sessions: sessionmaker[Session],
    account_id: int,
    automation_id: int,
    *,
    segment: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    shorteners: ShortenerList | None = None,
) -> PreflightReport:
    """`sendline automations preflight` for an automation known by id; reads only."""
    with sessions.begin() as session:
        automations = Automations(session, account_id, shorteners=shorteners)
        automations.get(automation_id)
        condition = checks.segment(segment, automations)
        moment = now or datetime.now(UTC)
        report = preflight(
            session, account_id, automation_id, segment=condition, now=moment, shorteners=shorteners
        )
        session.rollback()  # reads only, and says so
        return report


def start_by_id(
    sessions: sessionmaker[Session],
    account_id: int,
    automation_id: int,
    *,
    segment: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> BulkStart:
    """Enroll every contact of the segment now (`sendline automations start`); the
    worker sends. Says how many the segment holds and why some did not start."""
    with sessions.begin() as session:
        automations = Automations(session, account_id)
        found = automations.get(automation_id)
        condition = checks.segment(segment, automations)
        started = start_bulk(
            session, account_id, found.id, now=now or datetime.now(UTC), segment=condition
        )
        definition = automations.definition(found)
        own = definition.trigger.segment if isinstance(definition.trigger, BulkTrigger) else None
        audience_query = segment_query(session, account_id, both(own, condition)).subquery()
        audience = int(session.scalar(select(func.count()).select_from(audience_query)) or 0)
        return BulkStart(found.id, found.name, audience, started, _why_not(audience, started))


def _why_not(audience: int, started: int) -> tuple[str, ...]:
    if audience == 0:
        return ("no contact of the account is in the segment",)
    if started < audience:
        return (
            f"{audience - started} contacts of the segment were already enrolled and the "
            "automation's re-entry is once",
        )
    return ()
