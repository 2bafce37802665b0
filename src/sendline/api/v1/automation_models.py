"""The request and response models of /api/v1/automations, and their conversions from
the services' dataclasses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from sendline.engine.preflight import PreflightReport
from sendline.services.automation_checks import FieldMessage
from sendline.services.automation_pages import AutomationFull, AutomationRow, VersionRow

Status = Literal["draft", "active", "paused", "archived"]
SEGMENT = (
    'Only these contacts: a condition, e.g. {"all": [{"tag": "vip"}, {"consent": "opted_in"}]} '
    "(the format of an if_else condition; see GET /api/v1/automations/schema)."
)


class FieldMessageOut(BaseModel):
    """An error or warning about a definition; `field` is its path in the JSON document
    (`steps.1.body`, 0-based indexes), null when it is about the whole definition."""

    field: str | None
    detail: str


class RunCountsOut(BaseModel):
    active: int
    completed: int
    exited: int
    failed: int


class AutomationOut(BaseModel):
    """An automation: its state, trigger, current version and its runs by status."""

    id: int
    name: str
    status: Status
    trigger_type: str
    trigger_key: str | None  # the list, tag, field, event name or keyword it listens to
    version: int  # the current version's number
    runs: RunCountsOut
    created_at: datetime
    updated_at: datetime


class SavedAutomationOut(AutomationOut):
    """The automation as saved, with the warnings worth showing (nothing refused)."""

    warnings: list[FieldMessageOut]


class MessageCountsOut(BaseModel):
    queued: int
    sending: int
    unknown: int
    sent: int
    delivered: int
    undelivered: int
    failed: int
    held: int
    canceled: int


class StepOut(BaseModel):
    """A step of the current version in reading order, with where it leads, how many
    runs wait at it now, and its messages (all versions) by status and hold reason."""

    id: str
    type: str
    depth: int  # inside how many branches
    branch: Literal["then", "else"] | None  # on a branch's first step
    settings: dict[str, Any]
    leads_to: str
    waiting: int
    messages: MessageCountsOut
    held_reasons: dict[str, int]


class RunFailureOut(BaseModel):
    run_id: int
    contact_id: int
    failed_at: datetime
    reason: str


class AutomationDetailOut(AutomationOut):
    """`sendline automations show`: settings, the step graph with statistics per step,
    the latest failed runs and why, and the current definition."""

    reentry: Literal["once", "always"]
    transactional: bool
    steps: list[StepOut]
    failures: list[RunFailureOut]
    problems: list[str]  # what a save would refuse today (a version saved before a check)
    definition: dict[str, Any]


class VersionOut(BaseModel):
    id: int
    number: int
    current: bool
    created_at: datetime
    definition: dict[str, Any]


class ValidationOut(BaseModel):
    """A definition that would be saved as it is."""

    valid: bool
    name: str
    trigger_type: str
    steps: int  # branch steps included
    sms_steps: int
    warnings: list[FieldMessageOut]


class SegmentIn(BaseModel):
    """Which contacts: the automation's audience, narrowed by `segment` when given."""

    segment: dict[str, Any] | None = Field(default=None, max_length=20, description=SEGMENT)


class StartOut(BaseModel):
    """A bulk start: the contacts of the segment, the runs started, why not the others."""

    automation_id: int
    name: str
    audience: int
    started: int
    not_started: int
    reasons: list[str]


class CountryLineOut(BaseModel):
    region: str
    messages: int
    segments: int
    credits: int


class HeldSampleOut(BaseModel):
    contact_id: int
    phone: str | None  # as stored: the number to fix
    reason: str
    detail: str


class StepForecastOut(BaseModel):
    step_id: str
    sendable: int
    held: dict[str, int]
    segments: int
    credits: int


class PreflightOut(BaseModel):
    """`sendline automations preflight --json`: who would be texted now, who held and
    why, the cost by country, quiet-hour deferrals, a sample of numbers to fix."""

    automation_id: int
    name: str
    status: Status
    version: int
    trigger: str
    step_id: str | None  # the first send_sms step, simulated in full
    send_at: datetime
    audience: int
    already_enrolled: int
    to_send: int
    held: dict[str, int]  # by hold reason
    held_total: int
    by_country: list[CountryLineOut]
    segments: int
    credits_needed: int
    credits_available: int
    quiet_hours_deferred: int
    latest_deferral: datetime | None
    sample_held: list[HeldSampleOut]
    steps: list[StepForecastOut]
    notes: list[str]


class InvalidAutomationProblem(BaseModel):
    """A definition refused (422, code `invalid_automation`): `field` is the first
    problem's, `errors` lists each (up to 20) with its own field. A body that is not a
    definition at all (not JSON, not an object) is a plain problem, with no `errors`."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    errors: list[FieldMessageOut] = []


def messages_out(items: tuple[FieldMessage, ...]) -> list[FieldMessageOut]:
    return [FieldMessageOut(field=item.field, detail=item.detail) for item in items]


def automation_out(row: AutomationRow) -> AutomationOut:
    return AutomationOut(**_row_fields(row))


def saved_out(row: AutomationRow, warnings: tuple[FieldMessage, ...]) -> SavedAutomationOut:
    return SavedAutomationOut(**_row_fields(row), warnings=messages_out(warnings))


def detail_out(full: AutomationFull) -> AutomationDetailOut:
    steps = [
        StepOut(
            id=stats.line.id,
            type=stats.line.type,
            depth=stats.line.depth,
            branch=stats.line.branch,  # type: ignore[arg-type]  # "then" or "else"
            settings=stats.line.settings,
            leads_to=stats.line.leads_to,
            waiting=stats.waiting,
            messages=MessageCountsOut(**stats.messages),
            held_reasons=stats.held,
        )
        for stats in full.steps
    ]
    failures = [
        RunFailureOut(
            run_id=f.run_id, contact_id=f.contact_id, failed_at=f.failed_at, reason=f.reason
        )
        for f in full.failures
    ]
    return AutomationDetailOut(
        **_row_fields(full.row),
        reentry=full.reentry,  # type: ignore[arg-type]  # the definition's Literal
        transactional=full.transactional,
        steps=steps,
        failures=failures,
        problems=list(full.problems),
        definition=full.definition,
    )


def version_out(row: VersionRow) -> VersionOut:
    return VersionOut(
        id=row.id,
        number=row.number,
        current=row.current,
        created_at=row.created_at,
        definition=row.definition,
    )


def preflight_out(report: PreflightReport) -> PreflightOut:
    return PreflightOut.model_validate(report.to_dict())


def _row_fields(row: AutomationRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "status": row.status,
        "trigger_type": row.trigger_type,
        "trigger_key": row.trigger_key,
        "version": row.version,
        "runs": RunCountsOut(**row.runs),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
