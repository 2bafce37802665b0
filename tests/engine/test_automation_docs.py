"""docs/automations.md cannot drift: every example in it parses and passes the checks a
save makes (on both databases), and together they show every trigger and step type."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from sqlalchemy.orm import Session

from sendline.engine.automations import Automations
from sendline.engine.definitions import AutomationDefinition, Step, Trigger, parse_definition
from tests.engine.automation_factories import account, define_fields

DOC = Path(__file__).resolve().parents[2] / "docs" / "automations.md"
_BLOCK = re.compile(r"^```(yaml|json)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _examples() -> list[str]:
    return [match[2] for match in _BLOCK.finditer(DOC.read_text(encoding="utf-8"))]


def _kinds(union: object) -> set[str]:
    members = get_args(get_args(union)[0])
    return {member.model_fields["type"].annotation.__args__[0] for member in members}


def test_it_has_an_example_of_every_trigger_and_step() -> None:
    definitions = [parse_definition(text) for text in _examples()]
    triggers = {d.trigger.type for d in definitions}
    steps = {s.type for d in definitions for s in d.all_steps()}
    assert triggers == _kinds(Trigger)
    assert steps == _kinds(Step)
    assert any(d.transactional for d in definitions)
    assert any(isinstance(s, dict) for d in definitions for s in _branches(d))


def _branches(definition: AutomationDefinition) -> list[object]:
    dumped = definition.model_dump(by_alias=True, exclude_none=True)
    return [step for step in dumped["steps"] if isinstance(step.get("then"), list)]


@pytest.mark.parametrize("index", range(len(_examples())))
def test_it_saves_every_documented_example(session: Session, index: int) -> None:
    owner = account(session)
    define_fields(session, owner, CITY="text", BIRTHDAY="date", APPOINTMENT="date")
    define_fields(session, owner, ORDERS="number", PLAN="text")
    saved = Automations(session, owner.id).create(_examples()[index])
    assert saved.definition.graph.problems() == []
