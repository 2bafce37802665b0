"""The conditions of automation definitions (if_else, goals, bulk segments) as models.

`engine/conditions.py` evaluates them in SQL; `engine/definitions.py` re-exports them.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

MAX_NUMBER = 1e15  # condition values: well inside a float's exact integers and SQL numerics
Name = Annotated[str, Field(max_length=200)]  # tags, lists, fields, events, keywords


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


FieldOp = Literal["eq", "ne", "contains", "gt", "gte", "lt", "lte", "empty", "not_empty"]


class FieldCondition(Strict):
    field: Name
    op: FieldOp = "eq"
    value: Annotated[str, Field(max_length=1000)] | float | None = None

    @field_validator("value")
    @classmethod
    def _bounded(cls, value: str | float | None) -> str | float | None:
        if isinstance(value, float) and not (math.isfinite(value) and abs(value) < MAX_NUMBER):
            raise ValueError(f"a number in a condition is finite and below {MAX_NUMBER:.0e}")
        return value


class TagCondition(Strict):
    tag: Name
    present: bool = True


class ListCondition(Strict):
    list: Name
    member: bool = True


class ConsentCondition(Strict):
    consent: Literal["opted_in", "opted_out", "none"]


class LastMessageCondition(Strict):
    last_message_status: Literal[
        "queued", "sent", "delivered", "undelivered", "failed", "held", "canceled"
    ]


class RepliedCondition(Strict):
    replied: bool = True


class AllCondition(Strict):
    all: list[Condition] = Field(max_length=50)


class AnyCondition(Strict):
    any: list[Condition] = Field(max_length=50)


class NotCondition(Strict):
    not_: Condition = Field(alias="not")


_CONDITION_KEYS = (
    "field",
    "tag",
    "list",
    "consent",
    "last_message_status",
    "replied",
    "all",
    "any",
    "not",
)


def _condition_kind(data: Any) -> str | None:
    """Which kind of condition a mapping is, by its key: errors then name only that kind."""
    if isinstance(data, dict):
        return next((key for key in _CONDITION_KEYS if key in data), None)
    if isinstance(data, BaseModel):
        return next(k for k in _CONDITION_KEYS if k in type(data).model_fields or k == "not")
    return None


Condition = Annotated[
    Annotated[FieldCondition, Tag("field")]
    | Annotated[TagCondition, Tag("tag")]
    | Annotated[ListCondition, Tag("list")]
    | Annotated[ConsentCondition, Tag("consent")]
    | Annotated[LastMessageCondition, Tag("last_message_status")]
    | Annotated[RepliedCondition, Tag("replied")]
    | Annotated[AllCondition, Tag("all")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[NotCondition, Tag("not")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition",
        custom_error_message="not a condition: it has one of the keys "
        + ", ".join(_CONDITION_KEYS),
    ),
]


AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()
