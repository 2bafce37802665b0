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


NESTED = """
name: Offer
trigger: {type: event, name: order_paid}
transactional: true
steps:
  - type: if_else
    id: vip
    condition: {tag: vip}
    then: [{type: send_sms, body: "VIP"}]
    else:
      - {type: send_sms, body: "Other"}
      - {type: if_else, condition: {tag: new}, then: [{type: add_tag, tag: seen}]}
  - {type: exit}
"""


def test_it_numbers_branch_steps_under_their_if_else() -> None:
    definition = parse_definition(NESTED)
    assert [s.id for s in definition.all_steps()] == [
        "vip",
        "vip.then-1",
        "vip.else-1",
        "vip.else-2",
        "vip.else-2.then-1",
        "step-2",
    ]
    graph = definition.graph
    assert graph.node("vip.then-1").next == "step-2"  # the end of a branch: the join
    assert graph.node("vip.else-2.then-1").next == "step-2"
    assert definition.transactional and graph.problems() == []
    assert parse_definition(definition_to_json(definition)) == definition


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{type: wait, duration: 99999999999999d}", "longer than the maximum, 366 days"),
        ("{type: wait, duration: 367d}", "step step-1: duration '367d' is longer than"),
        ("{type: wait, duration: 53w}", "366 days"),
        ("{type: if_else, condition: {field: A, op: gt, value: 1.0e+300}}", "below 1e\\+15"),
        ("{type: if_else, condition: {field: A, op: gt, value: .inf}}", "finite"),
        ("{type: update_field, field: A, value: '" + "x" * 1001 + "'}", "at most 1000"),
        ("{type: add_tag, tag: '" + "t" * 201 + "'}", "at most 200"),
        ("{id: '" + "i" * 101 + "', type: exit}", "at most 100"),
    ],
)
def test_it_refuses_absurd_values_at_parse_time(step: str, message: str) -> None:
    with pytest.raises(InvalidAutomation, match=message):
        parse_definition(f"name: t\ntrigger: {{type: event, name: e}}\nsteps: [{step}]")


def test_it_accepts_the_longest_wait() -> None:
    text = "name: t\ntrigger: {type: event, name: e}\nsteps: [{type: wait, duration: 366d}]"
    [wait] = parse_definition(text).steps
    assert isinstance(wait, WaitStep) and wait.delay() == timedelta(days=366)


def test_it_refuses_branches_nested_too_deep() -> None:
    step = "{type: exit}"
    for _ in range(6):
        step = f"{{type: if_else, condition: {{tag: a}}, then: [{step}]}}"
    with pytest.raises(InvalidAutomation, match="nested more than 4 deep"):
        parse_definition(f"name: t\ntrigger: {{type: event, name: e}}\nsteps: [{step}]")


def test_it_finds_a_loop_through_a_goal() -> None:
    # The goal moves a run from `top` past it; the jump back to `top` closes the loop.
    text = (
        "name: t\ntrigger: {type: event, name: e}\nsteps:\n"
        "  - {id: top, type: wait, duration: 1d}\n"
        "  - {type: goal, condition: {tag: done}}\n"
        "  - {id: back, type: if_else, condition: {tag: x}, then: top}\n"
    )
    [problem] = parse_definition(text).graph.problems()
    assert problem.startswith("steps top -> back -> top loop without a wait")


def test_it_refuses_a_goal_inside_a_branch() -> None:
    text = (
        "name: t\ntrigger: {type: event, name: e}\nsteps:\n"
        "  - {type: if_else, condition: {tag: a}, then: [{type: goal, condition: {tag: b}}]}\n"
    )
    assert parse_definition(text).graph.problems() == [
        "step step-1.then-1: a goal belongs on the main path, not inside a branch"
    ]


def test_it_refuses_a_huge_whole_number() -> None:
    text = (
        "name: t\ntrigger: {type: event, name: e}\n"
        "steps: [{type: if_else, condition: {field: A, op: gt, value: 99999999999999999999999}}]"
    )
    with pytest.raises(InvalidAutomation, match="step step-1 condition.value: a number in a"):
        parse_definition(text)
