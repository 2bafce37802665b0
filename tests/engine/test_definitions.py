"""Automation definitions: what a user may write, and the errors for what they may not."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sendline.engine.definitions import (
    IfElseStep,
    InvalidAutomation,
    WaitStep,
    definition_to_json,
    parse_definition,
)

WELCOME = """
name: Welcome
trigger: {type: list_subscribed, list: Newsletter}
reentry: once
steps:
  - {type: send_sms, body: "Hi %FIRSTNAME|there%, welcome to the list!"}
  - {type: wait, duration: 2d}
  - type: if_else
    condition: {any: [{tag: vip}, {not: {replied: true}}]}
    then: thanks
  - {type: add_tag, tag: welcomed}
  - {id: thanks, type: send_sms, body: "Thanks for being with us"}
  - {type: goal, condition: {tag: purchased}, otherwise: exit}
  - {type: exit}
"""


def test_it_parses_yaml_and_numbers_steps() -> None:
    definition = parse_definition(WELCOME)
    assert [s.id for s in definition.steps] == [
        "step-1",
        "step-2",
        "step-3",
        "step-4",
        "thanks",
        "step-6",
        "step-7",
    ]
    wait = definition.steps[1]
    assert isinstance(wait, WaitStep) and wait.delay() == timedelta(days=2)
    branch = definition.steps[2]
    assert isinstance(branch, IfElseStep) and branch.then == "thanks" and branch.else_ is None
    assert definition.index_of("thanks") == 4


def test_it_round_trips_through_json() -> None:
    definition = parse_definition(WELCOME)
    assert parse_definition(definition_to_json(definition)) == definition


@pytest.mark.parametrize(
    "trigger",
    [
        "{type: tag_added, tag: vip}",
        "{type: field_changed, field: CITY, to: Paris}",
        "{type: event, name: order_shipped}",
        "{type: reply, keyword: JOIN}",
        "{type: reply}",
        "{type: date, field: BIRTHDAY, offset_days: -3, at: '10:00'}",
        "{type: bulk, segment: {all: [{consent: opted_in}, {field: CITY, op: eq, value: Paris}]}}",
    ],
)
def test_it_accepts_every_trigger(trigger: str) -> None:
    text = f"name: t\ntrigger: {trigger}\nsteps: [{{type: exit}}]"
    assert parse_definition(text).trigger.type in trigger


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: t\ntrigger: {type: nope}\nsteps: [{type: exit}]", "trigger"),
        ("name: t\ntrigger: {type: event, name: e}\nsteps: []", "steps"),
        ("name: t\ntrigger: {type: event, name: e}\nsteps: [{type: wait}]", "exactly one"),
        ("name: t\ntrigger: {type: event, name: e}\nsteps: [{type: wait, duration: soon}]", "30m"),
        (
            "name: t\ntrigger: {type: event, name: e}\n"
            "steps: [{type: if_else, condition: {tag: a}, then: nowhere}]",
            "unknown step 'nowhere'",
        ),
        (
            "name: t\ntrigger: {type: event, name: e}\n"
            "steps: [{id: a, type: exit}, {id: a, type: exit}]",
            "duplicate step ids: a",
        ),
        ("name: t\ntrigger: {type: date, field: B, at: '25:00'}\nsteps: [{type: exit}]", "09:30"),
        ("name: t\ntrigger: {type: event, name: e}\nsteps: [{type: send_sms, body: ''}]", "body"),
        ("name: t\ntrigger: {type: event, name: e, extra: 1}\nsteps: [{type: exit}]", "extra"),
        ("[1, 2]", "mapping"),
        ("name: [unclosed", "YAML"),
    ],
)
def test_it_refuses_bad_definitions_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(InvalidAutomation, match=message) as caught:
        parse_definition(text)
    assert caught.value.code == "invalid_automation"
