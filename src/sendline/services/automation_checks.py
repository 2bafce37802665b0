"""A definition given as data (the API's JSON), checked by the engine's own validator,
with every error tied to the field at fault: `steps.1.body`, `trigger.segment`.

The rules stay where they are (`engine/definitions.py`, `Automations.validate`); this
module only runs them and says where each problem is. Paths are the JSON document's,
with 0-based list indexes (`steps.0.then.1.condition`), as the request body has them.
A body that is too big or too deeply nested for any valid definition is refused before
it is parsed, so no input can make validation slow or overflow the stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sendline.engine.automations import Automations
from sendline.engine.conditions import segment_from_data
from sendline.engine.definitions import (
    AutomationDefinition,
    Condition,
    GoalStep,
    IfElseStep,
    InvalidAutomation,
    SendSmsStep,
    Step,
    UpdateFieldStep,
)
from sendline.engine.step_ids import where
from sendline.errors import InvalidInput

# Far above what a valid definition needs (500 steps, branches 4 deep, conditions of
# 50 terms) and far below what costs anything to walk.
MAX_DEPTH = 40
MAX_NODES = 100_000
MAX_ERRORS = 20  # listed in one answer; the rest follow once those are fixed


@dataclass(frozen=True, slots=True)
class FieldMessage:
    """An error or warning, with the field it is about (None: the whole definition)."""

    field: str | None
    detail: str


class DefinitionInvalid(InvalidAutomation):
    """InvalidAutomation with each problem's field; `field` is the first one's."""

    def __init__(self, errors: Sequence[FieldMessage]) -> None:
        super().__init__("; ".join(e.detail for e in errors), problems=[e.detail for e in errors])
        self.errors = tuple(errors)
        self.field = next((e.field for e in errors if e.field), None)


def check_size(data: Any, field: str | None = None) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH, holding more than MAX_NODES values or a
    text no database column can store, naming where (iteratively: a hostile body cannot
    exhaust the stack here)."""
    todo: list[tuple[Any, tuple[str, ...]]] = [(data, (field,) if field else ())]
    seen = 0
    while todo:
        node, path = todo.pop()
        seen += 1
        where = ".".join(path) or None
        if len(path) > MAX_DEPTH or seen > MAX_NODES:
            what = f"nested more than {MAX_DEPTH} deep" if len(path) > MAX_DEPTH else "too large"
            raise InvalidInput(f"{field or 'the definition'} is {what}", field=field)
        if isinstance(node, str) and not _storable(node):
            raise InvalidInput(
                f"{where or 'the definition'} holds a NUL character or a lone surrogate, "
                "which no text column can store",
                field=where,
            )
        if isinstance(node, Mapping):
            for key, value in node.items():
                todo += [(key, path), (value, (*path, str(key)))]
        elif isinstance(node, list):
            todo.extend((value, (*path, str(index))) for index, value in enumerate(node))


def _storable(text: str) -> bool:
    """Whether PostgreSQL can store the text (SQLite could, but the answer must not
    depend on the database): no NUL, valid UTF-8."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse(data: Mapping[str, Any]) -> AutomationDefinition:
    """The typed definition, or DefinitionInvalid naming each field in error."""
    check_size(data)
    raw = dict(data)
    try:
        return AutomationDefinition.model_validate(raw)
    except ValidationError as exc:
        errors = []
        for error in exc.errors()[:MAX_ERRORS]:
            said = error["msg"].removeprefix("Value error, ")
            field = field_path(error["loc"], raw) if error["loc"] else _whole(said)
            errors.append(FieldMessage(field, f"{where(error['loc'], raw)}: {said}"))
        raise DefinitionInvalid(errors) from None


def validate(
    automations: Automations, definition: AutomationDefinition
) -> tuple[FieldMessage, ...]:
    """The account-level checks (`Automations.validate`); their problems with fields."""
    try:
        warnings = automations.validate(definition)
    except InvalidAutomation as exc:
        raise DefinitionInvalid(with_fields(exc.problems, definition)[:MAX_ERRORS]) from None
    return tuple(with_fields(warnings, definition))


def segment(data: Mapping[str, Any] | None, automations: Automations) -> Condition | None:
    """A segment given in a request body, checked against the account's fields."""
    if data is None:
        return None
    check_size(data, "segment")
    try:
        condition = segment_from_data(dict(data))
        automations.check_segment(condition)
    except InvalidInput as exc:
        exc.field = exc.field or "segment"
        raise
    return condition


# -- where each problem is ---------------------------------------------------------------


def field_path(loc: Sequence[int | str], data: Mapping[str, Any]) -> str | None:
    """A pydantic error location as a path in the document: union tags dropped."""
    node: Any = data
    parts: list[str] = []
    for index, part in enumerate(loc):
        last = index + 1 == len(loc)
        after = None if last else loc[index + 1]
        if isinstance(node, Mapping) and isinstance(part, str) and part in node:
            if after is not None and after in node:
                continue  # a condition's kind (its key), before the key in error
            node = node[part]
            parts.append(part)
        elif isinstance(node, list) and isinstance(part, int):
            node = node[part] if 0 <= part < len(node) else None
            parts.append(str(part))
        elif last and isinstance(node, Mapping) and part != node.get("type"):
            parts.append(str(part))  # a missing field: its name (not the step's type)
        # else: a union member's tag (send_sms, list[...]): not in the document
    return ".".join(parts) or None


def _whole(said: str) -> str | None:
    """The field of a check on the whole definition (duplicate ids, jumps, nesting)."""
    if "transactional" in said:
        return "transactional"
    return "steps" if "step" in said or "branches" in said else None


def step_paths(steps: Sequence[Step], prefix: str = "steps") -> dict[str, tuple[str, Step]]:
    """Each step id with its path in the document and the step."""
    found: dict[str, tuple[str, Step]] = {}
    for index, step in enumerate(steps):
        path = f"{prefix}.{index}"
        found[step.id or ""] = (path, step)
        if isinstance(step, IfElseStep):
            for label, branch in step.branches():
                found.update(step_paths(branch, f"{path}.{label}"))
    return found


def with_fields(problems: Iterable[str], definition: AutomationDefinition) -> list[FieldMessage]:
    """The engine's problems ("step X: ...", "trigger: ...") with their fields."""
    paths = step_paths(definition.steps)
    # Longest first: an id may begin with another ("welcome" and "welcome.then-1").
    ids = sorted(paths, key=len, reverse=True)
    return [FieldMessage(_field_of(problem, paths, ids), problem) for problem in problems]


def _field_of(problem: str, paths: dict[str, tuple[str, Step]], ids: list[str]) -> str | None:
    if problem.startswith("trigger segment:"):
        return "trigger.segment"
    if problem.startswith("trigger:"):
        return "trigger.field"
    if problem.startswith("steps "):  # a loop: "steps a -> b -> a loop without a wait"
        first = next((i for i in ids if problem.startswith(f"steps {i} -> ")), None)
        return paths[first][0] if first is not None else "steps"
    step_id = next((i for i in ids if problem.startswith(f"step {i}: ")), None)
    if step_id is None:
        return None
    path, step = paths[step_id]
    said = problem.removeprefix(f"step {step_id}: ")
    if isinstance(step, SendSmsStep):
        return f"{path}.body"
    if isinstance(step, UpdateFieldStep):
        return f"{path}.field"
    if isinstance(step, IfElseStep) and said.startswith(("its then branch", "its else branch")):
        return f"{path}.{said.split()[1]}"
    if isinstance(step, IfElseStep | GoalStep) and "belongs on the main path" not in said:
        return f"{path}.condition"
    return path
