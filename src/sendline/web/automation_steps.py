"""The automation builder's buttons on a Draft (`web/automation_form.py`): add a step
to the main path or a branch, remove one, move one up or down.

A button names the list or step it acts on by its path, as the inputs are named
(`steps`, `steps.2.then`, `steps.2.then.0`); a path that names nothing (an edited form,
a stale page) changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from sendline.engine.definitions import MAX_STEPS
from sendline.web.automation_form import STEP_TYPES, Draft, count_steps, new_step, walk


def apply(draft: Draft, op: str, values: Mapping[str, str]) -> Draft:
    """Do what a builder button says: `add:<list>` (the type chosen in `add.<list>`),
    `remove:<step>`, `up:<step>`, `down:<step>`. A path that names nothing (an edited
    form, a stale page) changes nothing."""
    action, _, path = op.partition(":")
    if action == "add":
        kind = values.get(f"add.{path}", "")
        found = _list_at(draft, path)
        if found is not None and kind in STEP_TYPES and count_steps(draft["steps"]) < MAX_STEPS:
            steps, parent, branch = found
            step = new_step(kind)
            if any(s.get("id") for s in walk(draft["steps"])):
                step["id"] = _fresh_id(draft, parent, branch, len(steps))
            steps.append(step)
        return draft
    list_path, _, index_text = path.rpartition(".")
    located = _list_at(draft, list_path)
    if located is None or not index_text.isdigit() or int(index_text) >= len(located[0]):
        return draft
    steps, index = located[0], int(index_text)
    if action == "remove":
        del steps[index]
    elif action in ("up", "down"):
        other = index - 1 if action == "up" else index + 1
        if 0 <= other < len(steps):
            steps[index], steps[other] = steps[other], steps[index]
    return draft


def _list_at(draft: Draft, path: str) -> tuple[list[Draft], Draft | None, str] | None:
    """The step list at `steps` or `steps.2.then...`, its if_else and branch name."""
    parts = path.split(".")
    if parts[0] != "steps" or len(parts) % 2 == 0:
        return None
    steps: list[Draft] = draft["steps"]
    parent: Draft | None = None
    branch = ""
    for index_text, branch in zip(parts[1::2], parts[2::2], strict=True):
        if (
            not index_text.isdigit()
            or int(index_text) >= len(steps)
            or branch not in ("then", "else")
        ):
            return None
        parent = steps[int(index_text)]
        if parent.get("type") != "if_else":
            return None
        steps = parent.setdefault(branch, [])
    return steps, parent, branch


def _fresh_id(draft: Draft, parent: Draft | None, branch: str, length: int) -> str:
    """An id for a step added to steps that have ids (a saved version): numbered like
    the engine numbers, but never one already taken."""
    taken = {s.get("id") for s in walk(draft["steps"])}
    prefix = f"{parent['id']}.{branch}-" if parent and parent.get("id") else "step-"
    number = length + 1
    while f"{prefix}{number}" in taken:
        number += 1
    return f"{prefix}{number}"
