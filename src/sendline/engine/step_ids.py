"""Step ids: numbering the steps written without one, and naming a step in an error.

Every step needs an id: a run's position is one. The main path keeps the numbering it
always had (`step-N` by position), so stored runs of older versions stay where they are;
branch steps are numbered under their `if_else`, so editing one branch renumbers
nothing else. Errors name the step by id rather than by list index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

MAX_NESTING = 4  # if_else branches inside branches, at most this deep


def numbered(steps: list[Any], prefix: str = "step-", depth: int = 0) -> list[Any]:
    """The steps (raw data) with an id each: "step-N" on the main path (1-based), and
    "<if_else id>.then-N" / ".else-N" in a branch; ids given are kept."""
    if depth > MAX_NESTING:
        raise ValueError(f"branches are nested more than {MAX_NESTING} deep")
    result = []
    for index, step in enumerate(steps, start=1):
        if isinstance(step, dict):
            step = {**step, "id": step.get("id") or f"{prefix}{index}"}
            for label in ("then", "else"):
                if isinstance(step.get(label), list):
                    inner = numbered(step[label], f"{step['id']}.{label}-", depth + 1)
                    step = {**step, label: inner}
        result.append(step)
    return result


def describe(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    """The first few errors of a definition, each with its place."""
    parts = []
    for error in exc.errors()[:5]:
        place = where(error["loc"], data)
        parts.append(f"{place}: {error['msg'].removeprefix('Value error, ')}")
    return parts


def where(loc: Sequence[int | str], data: dict[str, Any]) -> str:
    """An error's place, with step ids instead of list indexes: "step step-2.then-1 body"."""
    try:
        node: Any = {**data, "steps": numbered(data.get("steps") or [])}
    except (TypeError, ValueError):
        node = data
    step: str | None = None
    fields: list[str] = []
    for index, part in enumerate(loc):
        after = loc[index + 1] if index + 1 < len(loc) else None
        if isinstance(node, dict) and part in node and after in node:
            continue  # a condition's kind (its key), before the key in error: not a place
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            if isinstance(node, dict) and isinstance(node.get("id"), str) and "type" in node:
                step, fields = node["id"], []
            else:
                fields.append(str(part))
        elif isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
            fields.append(part)
        elif not isinstance(node, dict | list) or isinstance(part, int):
            fields.append(str(part))
        # else: a union member's tag (send_sms, list[...]): not a place
    place = ".".join(fields)
    if step is None:
        return place or "definition"
    return f"step {step} {place}".rstrip()
