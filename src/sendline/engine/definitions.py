"""Automation definitions: data (JSON or YAML) validated into typed models.

A definition is versioned as a whole: editing an active automation stores a new version
and running contacts finish on the version they started on, so a step list never
changes under a contact's feet. Steps are a flat list with ids; branches (`if_else`)
and goals jump to ids, which keeps a run's position a single string in a row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sendline.errors import SendlineError


class InvalidAutomation(SendlineError):
    """A definition that cannot be saved; `problems` lists each one (the message joins them)."""

    code = "invalid_automation"

    def __init__(self, message: str, *, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems) or (message,)

    @classmethod
    def listing(cls, problems: Sequence[str]) -> InvalidAutomation:
        return cls("; ".join(problems), problems=problems)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---- conditions (used by if_else, goal and bulk segments) ---------------------------

FieldOp = Literal["eq", "ne", "contains", "gt", "gte", "lt", "lte", "empty", "not_empty"]


class FieldCondition(_Strict):
    field: str
    op: FieldOp = "eq"
    value: str | float | None = None


class TagCondition(_Strict):
    tag: str
    present: bool = True


class ListCondition(_Strict):
    list: str
    member: bool = True


class ConsentCondition(_Strict):
    consent: Literal["opted_in", "opted_out", "none"]


class LastMessageCondition(_Strict):
    last_message_status: Literal[
        "queued", "sent", "delivered", "undelivered", "failed", "held", "canceled"
    ]


class RepliedCondition(_Strict):
    replied: bool = True


class AllCondition(_Strict):
    all: list[Condition]


class AnyCondition(_Strict):
    any: list[Condition]


class NotCondition(_Strict):
    not_: Condition = Field(alias="not")


Condition = Union[  # noqa: UP007 - a recursive alias needs the explicit Union
    FieldCondition,
    TagCondition,
    ListCondition,
    ConsentCondition,
    LastMessageCondition,
    RepliedCondition,
    AllCondition,
    AnyCondition,
    NotCondition,
]

# ---- triggers ------------------------------------------------------------------------


class ListSubscribedTrigger(_Strict):
    type: Literal["list_subscribed"]
    list: str


class TagAddedTrigger(_Strict):
    type: Literal["tag_added"]
    tag: str


class FieldChangedTrigger(_Strict):
    type: Literal["field_changed"]
    field: str
    to: str | None = None  # only when the new value equals this


class EventTrigger(_Strict):
    type: Literal["event"]
    name: str


class ReplyTrigger(_Strict):
    type: Literal["reply"]
    keyword: str | None = None  # None: any reply that is not an opt-out/help keyword


class DateTrigger(_Strict):
    type: Literal["date"]
    field: str
    offset_days: int = Field(0, ge=-366, le=366)  # negative: before the date
    at: str = "09:00"  # local time in the contact's zone
    every_year: bool = False  # True: the anniversary (birthdays), not the date itself

    @field_validator("at")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        return _check_time(value)


class BulkTrigger(_Strict):
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


class _Step(_Strict):
    id: str | None = None


class SendSmsStep(_Step):
    type: Literal["send_sms"]
    body: str = Field(min_length=1, max_length=1600)


class WaitStep(_Step):
    type: Literal["wait"]
    duration: str | None = None  # "30m", "2h", "3d", "1w"
    until_time: str | None = None  # "10:00" in the contact's zone
    weekdays: list[Weekday] | None = None  # with until_time: only on these days

    @model_validator(mode="after")
    def _one_kind(self) -> WaitStep:
        if (self.duration is None) == (self.until_time is None):
            raise ValueError("a wait needs exactly one of duration or until_time")
        if self.duration is not None and not _DURATION.match(self.duration):
            raise ValueError(f"duration {self.duration!r} is not like 30m, 2h, 3d or 1w")
        if self.until_time is not None:
            _check_time(self.until_time)
        if self.weekdays is not None and self.until_time is None:
            raise ValueError("weekdays go with until_time")
        return self

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


class IfElseStep(_Step):
    type: Literal["if_else"]
    condition: Condition
    then: str | None = None  # step id; None: the next step
    else_: str | None = Field(None, alias="else")


class AddTagStep(_Step):
    type: Literal["add_tag"]
    tag: str


class RemoveTagStep(_Step):
    type: Literal["remove_tag"]
    tag: str


class UpdateFieldStep(_Step):
    type: Literal["update_field"]
    field: str
    value: str | None


class SubscribeStep(_Step):
    type: Literal["subscribe"]
    list: str


class UnsubscribeStep(_Step):
    type: Literal["unsubscribe"]
    list: str


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


class AutomationDefinition(_Strict):
    name: str = Field(min_length=1, max_length=200)
    trigger: Trigger
    reentry: Literal["once", "always"] = "once"
    steps: list[Step] = Field(min_length=1, max_length=500)

    @model_validator(mode="before")
    @classmethod
    def _number_steps(cls, data: Any) -> Any:
        # Steps without an id get "step-N" (1-based), so every position is addressable.
        if isinstance(data, dict) and isinstance(data.get("steps"), list):
            steps = [
                {**s, "id": s.get("id") or f"step-{i}"} if isinstance(s, dict) else s
                for i, s in enumerate(data["steps"], start=1)
            ]
            data = {**data, "steps": steps}
        return data

    @model_validator(mode="after")
    def _targets_exist(self) -> AutomationDefinition:
        ids = [s.id for s in self.steps]
        duplicates = sorted({i for i in ids if ids.count(i) > 1 and i is not None})
        if duplicates:
            raise ValueError(f"duplicate step ids: {', '.join(duplicates)}")
        for step in self.steps:
            if isinstance(step, IfElseStep):
                for target in (step.then, step.else_):
                    if target is not None and target not in ids:
                        raise ValueError(f"step {step.id} jumps to unknown step {target!r}")
        return self

    def index_of(self, step_id: str) -> int:
        for index, step in enumerate(self.steps):
            if step.id == step_id:
                return index
        raise KeyError(step_id)

    def sms_bodies(self) -> list[tuple[str, str]]:
        return [(s.id or "", s.body) for s in self.steps if isinstance(s, SendSmsStep)]


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
        raise InvalidAutomation.listing(_describe(exc)) from None


def _describe(exc: ValidationError) -> list[str]:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "definition"
        parts.append(f"{where}: {error['msg']}")
    return parts


def definition_to_json(definition: AutomationDefinition) -> str:
    return json.dumps(definition.model_dump(mode="json", by_alias=True, exclude_none=True))


AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()
BulkTrigger.model_rebuild()
IfElseStep.model_rebuild()
GoalStep.model_rebuild()
AutomationDefinition.model_rebuild()
