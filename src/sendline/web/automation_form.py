"""The automation builder's form: a definition as indexed form fields, and back.

The builder holds a definition as plain inputs named by their place in the JSON
document (`trigger.type`, `steps.0.body`, `steps.2.then.0.body`), so a path that
`DefinitionInvalid` names is the input to mark (or the step, branch or condition that
holds it). Pure functions, no database: form values -> Draft (strings in nested lists),
Draft -> definition data (what the services validate and save), definition data ->
Draft (to edit a saved version), the builder's buttons on a Draft, and error paths ->
input names. The step and trigger types come from `engine/definitions.py`.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from sendline.engine.definitions import MAX_STEPS, Step, Trigger
from sendline.engine.step_ids import MAX_NESTING
from sendline.services.automation_checks import FieldMessage

Draft = dict[str, Any]  # strings, lists of step drafts, condition drafts (all strings)


def _types(union: Any) -> tuple[str, ...]:
    """The `type` tags of a discriminated union of models (Step, Trigger)."""
    members = typing.get_args(typing.get_args(union)[0])
    return tuple(typing.get_args(m.model_fields["type"].annotation)[0] for m in members)


STEP_TYPES = _types(Step)
TRIGGER_TYPES = _types(Trigger)
# What each type shows in the builder; tests check these match the models' own fields.
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "send_sms": ("body",),
    "wait": ("duration", "until_time", "weekdays"),
    "if_else": ("condition", "then", "else"),
    "add_tag": ("tag",),
    "remove_tag": ("tag",),
    "update_field": ("field", "value"),
    "subscribe": ("list",),
    "unsubscribe": ("list",),
    "goal": ("condition", "otherwise"),
    "exit": (),
}
TRIGGER_FIELDS: dict[str, tuple[str, ...]] = {
    "list_subscribed": ("list",),
    "tag_added": ("tag",),
    "field_changed": ("field", "to"),
    "event": ("name",),
    "reply": ("keyword",),
    "date": ("field", "offset_days", "at", "every_year"),
    "bulk": ("segment",),
}
CONDITION_KINDS = ("tag", "list", "field", "consent", "last_message_status", "replied", "json")
CONDITION_TEXTS: tuple[str, ...] = ("field", "op", "value", "tag", "present", "list", "member")
CONDITION_TEXTS += ("consent", "last_message_status", "replied", "json")
NUMERIC_OPS = frozenset({"gt", "gte", "lt", "lte"})
NO_VALUE_OPS = frozenset({"empty", "not_empty"})
_TEXTS: tuple[str, ...] = (
    "type",
    "id",
    "body",
    "duration",
    "until_time",
    "tag",
    "field",
    "value",
    "list",
)
_TEXTS += ("otherwise", "then_goto", "else_goto", "name", "to", "keyword", "offset_days")
_TEXTS += ("at", "every_year")
MAX_PARTS = 3 + 2 * (MAX_NESTING + 2)  # steps.N(.then.M)*.condition.key
# "step <id>: " before an engine problem (ids are at most 100 characters).
STEP_PREFIX = re.compile(r"^step .{1,100}?: ", re.DOTALL)


def empty_draft() -> Draft:
    """A new automation: a custom event that sends one text."""
    return {
        "name": "",
        "reentry": "once",
        "transactional": "",
        "trigger": {"type": "event", "segment": {"kind": "none"}},
        "steps": [new_step("send_sms")],
    }


def new_step(kind: str) -> Draft:
    step: Draft = {"type": kind, "id": ""}
    if kind == "wait":
        step["duration"] = "1d"
    if kind in ("if_else", "goal"):
        step["condition"] = {"kind": "tag", "present": "yes"}
    if kind == "if_else":
        step.update({"then": [], "else": []})
    return step


# -- form values -> Draft ------------------------------------------------------------------


def parse_form(values: Mapping[str, str], lists: Mapping[str, list[str]]) -> Draft:
    """The Draft the posted builder holds; keys it does not know are ignored."""
    root: dict[str, Any] = {}
    for key, value in values.items():
        parts = key.split(".")
        if len(parts) > MAX_PARTS:
            continue
        node = root
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = list(lists.get(key, [value])) if parts[-1] == "weekdays" else value
    trigger = _dict(root.get("trigger"))
    return {
        "name": _text(root.get("name")),
        "reentry": _text(root.get("reentry")),
        "transactional": _text(root.get("transactional")),
        "trigger": {
            **{k: _text(trigger.get(k)) for k in _TEXTS if k in trigger},
            "segment": _condition_form(trigger.get("segment")),
        },
        "steps": _steps_form(root.get("steps"), 0, [0]),
    }


def _steps_form(node: Any, depth: int, count: list[int]) -> list[Draft]:
    found = _dict(node)
    # Posted in any order, maybe with gaps (a removed step): kept in index order.
    keys = sorted((k for k in found if k.isascii() and k.isdigit() and len(k) < 5), key=int)
    steps = []
    for key in keys:
        if count[0] >= MAX_STEPS or depth > MAX_NESTING + 1:
            break
        count[0] += 1
        raw = _dict(found[key])
        step: Draft = {k: _text(raw.get(k)) for k in _TEXTS if k in raw}
        step.setdefault("type", "")
        step.setdefault("id", "")
        if "weekdays" in raw:
            days = raw["weekdays"]
            step["weekdays"] = (
                [d for d in days if isinstance(d, str)] if isinstance(days, list) else []
            )
        if "condition" in raw:
            step["condition"] = _condition_form(raw["condition"])
        for branch in ("then", "else"):
            step[branch] = _steps_form(raw.get(branch), depth + 1, count)
        steps.append(step)
    return steps


def _condition_form(node: Any) -> Draft:
    raw = _dict(node)
    condition = {k: _text(raw.get(k)) for k in CONDITION_TEXTS if k in raw}
    condition["kind"] = _text(raw.get("kind")) or "none"
    return condition


def _dict(node: Any) -> dict[str, Any]:
    return node if isinstance(node, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# -- Draft -> definition data -----------------------------------------------------------------


def to_definition(draft: Draft) -> tuple[dict[str, Any], dict[str, str]]:
    """The definition the Draft describes, and the errors found converting it (a
    condition's JSON that does not parse), by input name. Empty optional inputs are
    left out, so the validator names a required one that is missing."""
    errors: dict[str, str] = {}
    trigger = draft.get("trigger", {})
    kind = trigger.get("type", "")
    data_trigger: dict[str, Any] = {"type": kind}
    for name in TRIGGER_FIELDS.get(kind, ()):
        if name == "segment":
            segment = _condition_data(trigger.get("segment", {}), "trigger.segment", errors)
            if segment is not None:
                data_trigger["segment"] = segment
        elif name == "every_year":
            data_trigger[name] = bool(trigger.get(name))
        elif trigger.get(name):
            data_trigger[name] = trigger[name]
    data: dict[str, Any] = {"name": draft.get("name", ""), "trigger": data_trigger}
    if draft.get("reentry"):
        data["reentry"] = draft["reentry"]
    data["transactional"] = bool(draft.get("transactional"))
    data["steps"] = _steps_data(draft.get("steps", []), "steps", errors)
    return data, errors


def _steps_data(steps: list[Draft], path: str, errors: dict[str, str]) -> list[dict[str, Any]]:
    return [_step_data(step, f"{path}.{i}", errors) for i, step in enumerate(steps)]


def _step_data(step: Draft, path: str, errors: dict[str, str]) -> dict[str, Any]:
    kind = step.get("type", "")
    data: dict[str, Any] = {"type": kind}
    if step.get("id"):
        data["id"] = step["id"]
    for name in STEP_FIELDS.get(kind, ()):
        value = step.get(name)
        if name == "body":
            data[name] = value or ""  # an empty text: "at least 1 character", beside it
        elif name == "value":
            data[name] = value or None  # update_field: an empty value clears the field
        elif name == "condition":
            condition = _condition_data(step.get(name, {}), f"{path}.condition", errors)
            if condition is not None:
                data[name] = condition
        elif name in ("then", "else"):
            if value:
                data[name] = _steps_data(value, f"{path}.{name}", errors)
            elif step.get(f"{name}_goto"):
                data[name] = step[f"{name}_goto"]
        elif value:
            data[name] = value
    return data


def _condition_data(condition: Draft, name: str, errors: dict[str, str]) -> Any:
    kind = condition.get("kind", "none")
    yes = {key: condition.get(key, "yes") != "no" for key in ("present", "member", "replied")}
    if kind == "none":
        return None
    if kind == "field":
        return _field_condition(condition)
    if kind in ("tag", "list"):
        flag = "present" if kind == "tag" else "member"
        return {kind: condition.get(kind, ""), flag: yes[flag]}
    if kind == "replied":
        return {"replied": yes["replied"]}
    if kind in ("consent", "last_message_status"):
        return {kind: condition.get(kind, "")}
    if kind == "json":
        try:
            return json.loads(condition.get("json", ""))
        except ValueError as exc:
            errors[f"{name}.json"] = f"not valid JSON: {exc}"
        except RecursionError:  # "[[[[..." thousands deep
            errors[f"{name}.json"] = "not valid JSON: nested too deep"
        return None
    errors[f"{name}.kind"] = "choose a kind of condition"
    return None


def _field_condition(condition: Draft) -> dict[str, Any]:
    op = condition.get("op") or "eq"
    data: dict[str, Any] = {"field": condition.get("field", ""), "op": op}
    value = condition.get("value", "")
    if op in NUMERIC_OPS:
        try:
            data["value"] = float(value)
        except ValueError:
            data["value"] = value  # refused by the validator, beside the input
    elif op not in NO_VALUE_OPS:
        data["value"] = value
    return data


# -- definition data -> Draft ----------------------------------------------------------------


def from_definition(data: Any) -> Draft:
    """The Draft of a definition (a saved version, or one pasted as YAML or JSON);
    whatever is not a definition gives an empty field, never an error."""
    found = _dict(data)
    trigger = _dict(found.get("trigger"))
    return {
        "name": _shown(found.get("name")),
        "reentry": _shown(found.get("reentry")) or "once",
        "transactional": "1" if found.get("transactional") is True else "",
        "trigger": {
            **{k: _shown(v) for k, v in trigger.items() if k != "segment"},
            "every_year": "1" if trigger.get("every_year") is True else "",
            "segment": _condition_draft(trigger.get("segment")),
        },
        "steps": _steps_draft(found.get("steps"), 0),
    }


def _steps_draft(steps: Any, depth: int) -> list[Draft]:
    if not isinstance(steps, list) or depth > MAX_NESTING + 1:
        return []
    drafts = []
    for raw in steps[:MAX_STEPS]:
        step = _dict(raw)
        draft: Draft = {k: _shown(step.get(k)) for k in _TEXTS if k in step}
        draft.setdefault("type", "")
        draft.setdefault("id", "")
        days = step.get("weekdays")
        draft["weekdays"] = [str(d) for d in days] if isinstance(days, list) else []
        if "condition" in step:
            draft["condition"] = _condition_draft(step["condition"])
        for branch in ("then", "else"):
            target = step.get(branch)
            draft[branch] = _steps_draft(target, depth + 1)
            draft[f"{branch}_goto"] = target if isinstance(target, str) else ""
        drafts.append(draft)
    return drafts


def _condition_draft(condition: Any) -> Draft:
    """A condition as the builder's simple form when it is one, else as JSON."""
    if condition is None:
        return {"kind": "none"}
    if isinstance(condition, dict):
        keys = set(condition)
        flags = {"tag": "present", "list": "member"}
        for kind, flag in flags.items():
            if kind in keys and keys <= {kind, flag}:
                yes = condition.get(flag, True) is not False
                return {"kind": kind, kind: _shown(condition[kind]), flag: "yes" if yes else "no"}
        if "field" in keys and keys <= {"field", "op", "value"}:
            shown = {k: _shown(condition.get(k)) for k in ("field", "op", "value")}
            return {"kind": "field", **shown}
        for kind in ("consent", "last_message_status"):
            if keys == {kind}:
                return {"kind": kind, kind: _shown(condition[kind])}
        if keys == {"replied"}:
            return {"kind": "replied", "replied": "no" if condition["replied"] is False else "yes"}
    text = json.dumps(condition, indent=2, ensure_ascii=False, default=str)
    return {"kind": "json", "json": text}


def _shown(value: Any) -> str:
    """A value as an input shows it."""
    if value is None or isinstance(value, bool):
        return "" if not value else "1"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)  # YAML dates are not JSON


def walk(steps: list[Draft]) -> Iterable[Draft]:
    for step in steps:
        yield step
        for branch in ("then", "else"):
            yield from walk(step.get(branch) or [])


def count_steps(steps: list[Draft]) -> int:
    return sum(1 for _ in walk(steps))


# -- errors -> inputs -----------------------------------------------------------------------------


def input_names(draft: Draft) -> set[str]:
    """Every input and region (step, branch, condition) the builder shows for `draft`:
    the places an error can be put beside."""
    names = {"name", "reentry", "transactional", "trigger", "trigger.type", "steps"}
    trigger = draft.get("trigger", {})
    for name in TRIGGER_FIELDS.get(trigger.get("type", ""), ()):
        names |= _condition_names("trigger.segment") if name == "segment" else {f"trigger.{name}"}
    return names | _step_names(draft.get("steps", []), "steps")


def _step_names(steps: list[Draft], path: str) -> set[str]:
    names = {path}
    for index, step in enumerate(steps):
        here = f"{path}.{index}"
        names |= {here, f"{here}.type"}
        for name in STEP_FIELDS.get(step.get("type", ""), ()):
            if name == "condition":
                names |= _condition_names(f"{here}.condition")
            elif name in ("then", "else"):
                names |= _step_names(step.get(name) or [], f"{here}.{name}")
                names.add(f"{here}.{name}_goto")
            else:
                names.add(f"{here}.{name}")
    return names


def _condition_names(path: str) -> set[str]:
    return {path, f"{path}.kind", *(f"{path}.{key}" for key in CONDITION_TEXTS)}


def error_fields(errors: Iterable[FieldMessage], names: set[str]) -> dict[str, str]:
    """Each error beside the input its path names, or the nearest step, branch or
    condition holding it; `_form` for the definition as a whole."""
    placed: dict[str, str] = {}
    listed = list(errors)
    paths = [error.field or "" for error in listed]
    for error in listed:
        if _other_alternative(error, paths):
            continue
        name = _nearest(error.field, names)
        detail = _beside(error.detail, name)
        placed[name] = f"{placed[name]}; {detail}" if name in placed else detail
    return placed


def _beside(detail: str, name: str) -> str:
    """The engine names a step by its id ("step step-1.then-1: ..."): beside the step's
    own input that internal id says nothing the page does not, so it is dropped there
    (kept on the form as a whole or the step list, where it tells which step)."""
    if name in ("_form", "steps") or not name.startswith("steps."):
        return detail
    return STEP_PREFIX.sub("", detail, count=1)


def _other_alternative(error: FieldMessage, paths: list[str]) -> bool:
    """A branch is steps or a step id: when its steps are in error, pydantic also says
    the branch is not a string (nor None). Noise beside a branch of steps: left out."""
    alternatives = ("Input should be a valid string", "Input should be None")
    inside = f"{error.field}."
    return error.detail.endswith(alternatives) and any(p.startswith(inside) for p in paths)


def _nearest(path: str | None, names: set[str]) -> str:
    parts = (path or "").split(".")
    while parts and parts[0]:
        candidate = ".".join(parts)
        if candidate in names:
            return candidate
        parts.pop()
    return "_form"
