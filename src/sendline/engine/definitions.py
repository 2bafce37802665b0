"""Automation definitions: data (JSON or YAML) validated into typed models.

A definition is versioned as a whole: editing an active automation stores a new version
and running contacts finish on the version they started on, so a step list never
changes under a contact's feet. Every step has an id (numbered when omitted), which
keeps a run's position a single string in a row. An `if_else` holds its branches as
step lists (`then: [...]`, `else: [...]`): each branch ends where its list ends and the
run joins the step after the `if_else`. A branch may instead jump to a step id (the
older form, still read); `engine/step_graph.py` turns the tree into one graph.

Values are bounded so a definition that saves can also run: a wait is at most 366 days,
numbers are finite and below 10^15, texts and lists have maximum lengths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, time, timedelta, tzinfo
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from sendline.engine.condition_models import (
    MAX_NUMBER,
    AllCondition,
    AnyCondition,
    Condition,
    ConsentCondition,
    FieldCondition,
    LastMessageCondition,
    ListCondition,
    Name,
    NotCondition,
    RepliedCondition,
    Strict,
    TagCondition,
)
from sendline.engine.step_ids import describe, numbered
from sendline.errors import SendlineError

if TYPE_CHECKING:
    from sendline.engine.step_graph import StepGraph

MAX_WAIT = timedelta(days=366)  # a longer wait is a mistake (or an overflow in the worker)
MAX_STEPS = 500  # every step of a definition, branches included
StepId = Annotated[str, Field(min_length=1, max_length=100)]  # automation_runs.step_id


class InvalidAutomation(SendlineError):
    """A definition that cannot be saved; `problems` lists each one (the message joins them)."""

    code = "invalid_automation"

    def __init__(self, message: str, *, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems) or (message,)

    @classmethod
    def listing(cls, problems: Sequence[str]) -> InvalidAutomation:
        return cls("; ".join(problems), problems=problems)


# ---- triggers ------------------------------------------------------------------------


class ListSubscribedTrigger(Strict):
    type: Literal["list_subscribed"]
    list: Name


class TagAddedTrigger(Strict):
    type: Literal["tag_added"]
    tag: Name


class FieldChangedTrigger(Strict):
    type: Literal["field_changed"]
    field: Name
    to: Name | None = None  # only when the new value equals this


class EventTrigger(Strict):
    type: Literal["event"]
    name: Name


class ReplyTrigger(Strict):
    type: Literal["reply"]
    keyword: Name | None = None  # None: any reply that is not an opt-out/help keyword


class DateTrigger(Strict):
    type: Literal["date"]
    field: Name
    offset_days: int = Field(0, ge=-366, le=366)  # negative: before the date
    at: str = "09:00"  # local time in the contact's zone
    every_year: bool = False  # True: the anniversary (birthdays), not the date itself

    @field_validator("at")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        return _check_time(value)


class BulkTrigger(Strict):
    type: Literal["bulk"]
    segment: Condition | None = None  # None: every contact of the account


Trigger = Annotated[
    ListSubscribedTrigger
    | TagAddedTrigger
    | FieldChangedTrigger
    | EventTrigger
    | ReplyTrigger
    | DateTrigger
    | BulkTrigger,
    Field(discriminator="type"),
]

# ---- steps -----------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


class _Step(Strict):
    id: StepId | None = None


class SendSmsStep(_Step):
    type: Literal["send_sms"]
    body: str = Field(min_length=1, max_length=1600)


class WaitStep(_Step):
    type: Literal["wait"]
    duration: str | None = Field(None, description="30s, 30m, 2h, 3d or 1w; at most 366 days")
    until_time: str | None = Field(None, description="HH:MM in the contact's zone")
    weekdays: list[Weekday] | None = Field(None, max_length=7)  # with until_time: these days

    @model_validator(mode="after")
    def _one_kind(self) -> WaitStep:
        if (self.duration is None) == (self.until_time is None):
            raise ValueError("a wait needs exactly one of duration or until_time")
        if self.duration is not None and not _DURATION.match(self.duration):
            raise ValueError(f"duration {self.duration!r} is not like 30m, 2h, 3d or 1w")
        if self.duration is not None and self._too_long():
            raise ValueError(f"duration {self.duration!r} is longer than the maximum, 366 days")
        if self.until_time is not None:
            _check_time(self.until_time)
        if self.weekdays is not None and self.until_time is None:
            raise ValueError("weekdays go with until_time")
        return self

    def _too_long(self) -> bool:
        digits = (_DURATION.match(self.duration or "") or ["", ""])[1]
        # More digits than 366 days in seconds has: too long, without computing it.
        return len(digits.lstrip("0")) > 8 or self.delay() > MAX_WAIT

    def delay(self) -> timedelta:
        match = _DURATION.match(self.duration or "")
        if match is None:
            raise ValueError("not a duration wait")
        return timedelta(seconds=int(match[1]) * _UNITS[match[2]])

    def ends_at(self, now: datetime, zone: tzinfo) -> datetime:
        """When the wait is over: after its duration, or at the next allowed local time."""
        if self.duration is not None:
            return now + self.delay()
        hour, minute = (int(p) for p in (self.until_time or "00:00").split(":"))
        days = {_WEEKDAYS[d] for d in self.weekdays} if self.weekdays else set(range(7))
        local_day = now.astimezone(zone).date()
        for offset in range(8):
            day = local_day + timedelta(days=offset)
            # Through UTC: a time in a DST gap becomes the first valid instant after it.
            moment = datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)
            if day.weekday() in days and moment > now:
                return moment
        raise AssertionError("a week always holds an allowed day")  # pragma: no cover


# A branch: the steps it runs, then the join (the step after the if_else); or the id of
# a step to jump to (and go on from there, through whatever follows it).
Branch = Union[list["Step"], StepId, None]  # noqa: UP007 - a recursive alias
_BRANCH = "steps (the run then joins the step after the if_else), or a step id to jump to"


class IfElseStep(_Step):
    type: Literal["if_else"]
    condition: Condition
    then: Branch = Field(None, description=_BRANCH)
    else_: Branch = Field(None, alias="else", description=_BRANCH)

    def branches(self) -> Iterator[tuple[str, list[Step]]]:
        """The branches written as step lists (not the jumps)."""
        for label, branch in (("then", self.then), ("else", self.else_)):
            if isinstance(branch, list):
                yield label, branch


class AddTagStep(_Step):
    type: Literal["add_tag"]
    tag: Name


class RemoveTagStep(_Step):
    type: Literal["remove_tag"]
    tag: Name


class UpdateFieldStep(_Step):
    type: Literal["update_field"]
    field: Name
    value: Annotated[str, Field(max_length=1000)] | None


class SubscribeStep(_Step):
    type: Literal["subscribe"]
    list: Name


class UnsubscribeStep(_Step):
    type: Literal["unsubscribe"]
    list: Name


class GoalStep(_Step):
    """Contacts anywhere before this step jump here as soon as `condition` holds."""

    type: Literal["goal"]
    condition: Condition
    otherwise: Literal["continue", "wait", "exit"] = "continue"


class ExitStep(_Step):
    type: Literal["exit"]


Step = Annotated[
    SendSmsStep
    | WaitStep
    | IfElseStep
    | AddTagStep
    | RemoveTagStep
    | UpdateFieldStep
    | SubscribeStep
    | UnsubscribeStep
    | GoalStep
    | ExitStep,
    Field(discriminator="type"),
]


class AutomationDefinition(Strict):
    name: str = Field(min_length=1, max_length=200)
    trigger: Trigger
    reentry: Literal["once", "always"] = "once"
    # Order and shipping texts: no marketing quiet hours nor frequency cap; consent and
    # the STOP clause still apply (issue 12 #10). A blast (bulk trigger) never is.
    transactional: bool = Field(False, description="no quiet hours, no frequency cap")
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    @field_validator("name")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        # Names are looked up trimmed (str.strip): " Sale" and "Sale" must be one name.
        if not value.strip():
            raise ValueError("a name cannot be blank")
        return value.strip()

    @model_validator(mode="before")
    @classmethod
    def _number_steps(cls, data: Any) -> Any:
        # Steps without an id get "step-N" (1-based), branch steps "<if_else id>.then-N",
        # so every position is addressable and the top level keeps its old numbering.
        if isinstance(data, dict) and isinstance(data.get("steps"), list):
            data = {**data, "steps": numbered(data["steps"])}
        return data

    @model_validator(mode="after")
    def _targets_exist(self) -> AutomationDefinition:
        ids = [s.id for s in self.all_steps()]
        if len(ids) > MAX_STEPS:
            raise ValueError(f"{len(ids)} steps: at most {MAX_STEPS}, branches included")
        duplicates = sorted({i for i in ids if ids.count(i) > 1 and i is not None})
        if duplicates:
            raise ValueError(f"duplicate step ids: {', '.join(duplicates)}")
        for step in self.all_steps():
            if isinstance(step, IfElseStep):
                for target in (step.then, step.else_):
                    if isinstance(target, str) and target not in ids:
                        raise ValueError(f"step {step.id} jumps to unknown step {target!r}")
        if self.transactional and isinstance(self.trigger, BulkTrigger):
            raise ValueError(
                "a bulk (blast) automation cannot be transactional: transactional texts "
                "answer one contact's own event (an order, a shipment)"
            )
        return self

    def all_steps(self) -> Iterator[Step]:
        """Every step, branches included, in reading order."""
        return _walk(self.steps)

    @cached_property
    def graph(self) -> StepGraph:
        """Where each step leads (built once per definition; definitions are cached)."""
        from sendline.engine.step_graph import StepGraph  # the graph module reads this one

        return StepGraph(self.steps)

    def index_of(self, step_id: str) -> int:
        """The position of a top-level step."""
        for index, step in enumerate(self.steps):
            if step.id == step_id:
                return index
        raise KeyError(step_id)

    def sms_bodies(self) -> list[tuple[str, str]]:
        return [(s.id or "", s.body) for s in self.all_steps() if isinstance(s, SendSmsStep)]


def _walk(steps: Sequence[Step]) -> Iterator[Step]:
    for step in steps:
        yield step
        if isinstance(step, IfElseStep):
            for _, branch in step.branches():
                yield from _walk(branch)


def _check_time(value: str) -> str:
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value)
    if match is None:
        raise ValueError(f"{value!r} is not a time like 09:30")
    return value


def parse_definition(text: str) -> AutomationDefinition:
    """Parse a YAML or JSON definition; errors name the field and what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidAutomation(f"not valid YAML or JSON: {exc}") from None
    return definition_from_data(data)


def definition_from_data(data: Any) -> AutomationDefinition:
    if not isinstance(data, dict):
        raise InvalidAutomation("an automation definition is a mapping with name, trigger, steps")
    try:
        return AutomationDefinition.model_validate(data)
    except ValidationError as exc:
        raise InvalidAutomation.listing(describe(exc, data)) from None


def definition_to_json(definition: AutomationDefinition) -> str:
    return json.dumps(definition.model_dump(mode="json", by_alias=True, exclude_none=True))


BulkTrigger.model_rebuild()
IfElseStep.model_rebuild()
GoalStep.model_rebuild()
AutomationDefinition.model_rebuild()

# The conditions live in engine/condition_models.py; importers find them here too.
__all__ = [
    "MAX_NUMBER",
    "AllCondition",
    "AnyCondition",
    "Condition",
    "ConsentCondition",
    "FieldCondition",
    "LastMessageCondition",
    "ListCondition",
    "NotCondition",
    "RepliedCondition",
    "TagCondition",
]
