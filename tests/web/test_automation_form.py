"""The builder's form <-> definition conversion, its buttons and where errors go: pure."""

from __future__ import annotations

from typing import Any

import pytest

from sendline.engine.definitions import Step, Trigger, definition_from_data
from sendline.services.automation_checks import DefinitionInvalid, FieldMessage, parse
from sendline.web import automation_form as forms
from sendline.web.automation_steps import apply

BRANCHED: dict[str, Any] = {
    "name": "Order shipped",
    "trigger": {"type": "event", "name": "order_shipped"},
    "reentry": "always",
    "transactional": True,
    "steps": [
        {"type": "wait", "duration": "2h"},
        {
            "type": "if_else",
            "condition": {"tag": "vip"},
            "then": [{"type": "send_sms", "body": "Ships free, VIP!"}],
            "else": [
                {"type": "send_sms", "body": "It has shipped."},
                {"type": "add_tag", "tag": "shipped"},
            ],
        },
        {"type": "wait", "until_time": "09:30", "weekdays": ["mon", "fri"]},
        {"type": "goal", "condition": {"replied": True}, "otherwise": "exit"},
        {"type": "update_field", "field": "CITY", "value": None},
        {"type": "exit"},
    ],
}


def flat(draft: forms.Draft) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The form fields a browser posts for `draft` (as the builder names its inputs)."""
    values: dict[str, str] = {}
    lists: dict[str, list[str]] = {}

    def put(name: str, value: Any) -> None:
        if isinstance(value, list):
            lists[name] = value
            if value:
                values[name] = value[0]
        else:
            values[name] = value

    def steps(items: list[forms.Draft], path: str) -> None:
        for index, step in enumerate(items):
            here = f"{path}.{index}"
            for key, value in step.items():
                if key in ("then", "else"):
                    steps(value, f"{here}.{key}")
                elif key == "condition":
                    for ckey, cvalue in value.items():
                        put(f"{here}.condition.{ckey}", cvalue)
                else:
                    put(f"{here}.{key}", value)

    for key in ("name", "reentry", "transactional"):
        put(key, draft[key])
    for key, value in draft["trigger"].items():
        if key == "segment":
            for ckey, cvalue in value.items():
                put(f"trigger.segment.{ckey}", cvalue)
        else:
            put(f"trigger.{key}", value)
    steps(draft["steps"], "steps")
    return values, lists


def test_it_offers_every_step_and_trigger_type_of_the_definitions() -> None:
    assert set(forms.STEP_TYPES) == set(forms.STEP_FIELDS)
    assert set(forms.TRIGGER_TYPES) == set(forms.TRIGGER_FIELDS)
    assert {"send_sms", "wait", "if_else", "add_tag", "exit"} <= set(forms.STEP_TYPES)
    assert {"event", "list_subscribed", "bulk"} <= set(forms.TRIGGER_TYPES)


@pytest.mark.parametrize(
    ("union", "shown"), [(Step, forms.STEP_FIELDS), (Trigger, forms.TRIGGER_FIELDS)]
)
def test_it_shows_every_field_of_each_model(union: Any, shown: dict[str, tuple[str, ...]]) -> None:
    import typing

    for model in typing.get_args(typing.get_args(union)[0]):
        kind = typing.get_args(model.model_fields["type"].annotation)[0]
        names = {f.alias or n for n, f in model.model_fields.items()} - {"type", "id"}
        assert names == set(shown[kind]), kind


def test_it_round_trips_a_branched_definition_through_the_form() -> None:
    draft = forms.from_definition(BRANCHED)
    values, lists = flat(draft)
    assert values["steps.1.then.0.body"] == "Ships free, VIP!"
    assert values["steps.1.condition.kind"] == "tag"
    again, errors = forms.to_definition(forms.parse_form(values, lists))
    assert errors == {}
    assert parse(again).model_dump() == parse(BRANCHED).model_dump()


def test_it_keeps_step_ids_of_a_saved_version() -> None:
    saved = definition_from_data(BRANCHED).model_dump(mode="json", by_alias=True, exclude_none=True)
    data, _ = forms.to_definition(forms.from_definition(saved))
    assert data["steps"][1]["then"][0]["id"] == "step-2.then-1"


@pytest.mark.parametrize(
    ("condition", "kind"),
    [
        ({"tag": "vip", "present": False}, "tag"),
        ({"list": "News", "member": True}, "list"),
        ({"field": "AGE", "op": "gte", "value": 18.0}, "field"),
        ({"consent": "opted_in"}, "consent"),
        ({"last_message_status": "failed"}, "last_message_status"),
        ({"replied": False}, "replied"),
        ({"all": [{"tag": "a"}, {"not": {"tag": "b"}}]}, "json"),
    ],
)
def test_it_edits_each_kind_of_condition(condition: dict[str, Any], kind: str) -> None:
    drafted = forms._condition_draft(condition)
    assert drafted["kind"] == kind
    errors: dict[str, str] = {}
    assert forms._condition_data(drafted, "c", errors) == condition
    assert errors == {}


def test_it_names_a_condition_json_that_does_not_parse() -> None:
    errors: dict[str, str] = {}
    assert (
        forms._condition_data({"kind": "json", "json": "{nope"}, "steps.0.condition", errors)
        is None
    )
    assert "not valid JSON" in errors["steps.0.condition.json"]


def test_it_leaves_out_empty_inputs_so_the_validator_names_them() -> None:
    draft = forms.empty_draft()
    draft["trigger"]["name"] = ""
    data, _ = forms.to_definition(draft)
    assert data["trigger"] == {"type": "event"}
    assert data["steps"] == [{"type": "send_sms", "body": ""}]


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"steps": "x", "steps.0": "y"},
        {"steps.0.body": "a", "steps.0": "b"},
        {"steps.99999999.type": "send_sms"},
        {"steps.-1.type": "x", "steps.١.type": "x"},
        {"." * 500: "x"},
        {"steps.0.then.0.then.0.then.0.then.0.then.0.then.0.type": "send_sms"},
        {"trigger.segment": "x", "trigger.segment.kind": "field"},
    ],
)
def test_it_never_fails_on_odd_form_fields(values: dict[str, str]) -> None:
    draft = forms.parse_form(values, {})
    forms.to_definition(draft)
    forms.input_names(draft)


def test_it_adds_removes_and_moves_steps() -> None:
    draft = forms.empty_draft()
    apply(draft, "add:steps", {"add.steps": "if_else"})
    apply(draft, "add:steps.1.then", {"add.steps.1.then": "add_tag"})
    apply(draft, "add:steps.1.else", {"add.steps.1.else": "nonsense"})
    assert [s["type"] for s in draft["steps"]] == ["send_sms", "if_else"]
    assert [s["type"] for s in draft["steps"][1]["then"]] == ["add_tag"]
    assert draft["steps"][1]["else"] == []
    apply(draft, "up:steps.1", {})
    assert [s["type"] for s in draft["steps"]] == ["if_else", "send_sms"]
    apply(draft, "down:steps.1", {})  # the last one: nowhere to go
    apply(draft, "remove:steps.0.then.0", {})
    assert draft["steps"][0]["then"] == []
    for stale in ("remove:steps.9", "up:steps.1.then.0", "add:steps.7.then", "down:x", "?"):
        apply(draft, stale, {"add.steps.7.then": "exit"})
    assert [s["type"] for s in draft["steps"]] == ["if_else", "send_sms"]


def test_it_gives_a_step_added_to_a_saved_version_an_id_not_taken() -> None:
    saved = definition_from_data(BRANCHED).model_dump(mode="json", by_alias=True, exclude_none=True)
    draft = forms.from_definition(saved)
    apply(draft, "remove:steps.0", {})  # step-2 now sits first; a new last step...
    apply(draft, "add:steps", {"add.steps": "exit"})
    apply(draft, "add:steps.0.then", {"add.steps.0.then": "exit"})
    assert draft["steps"][-1]["id"] == "step-7"
    assert draft["steps"][0]["then"][-1]["id"] == "step-2.then-2"
    parse(forms.to_definition(draft)[0])  # no duplicate ids


def test_it_puts_each_error_beside_its_input_or_the_nearest_region() -> None:
    draft = forms.from_definition(BRANCHED)
    names = forms.input_names(draft)
    errors = [
        FieldMessage("steps.1.then.0.body", "bad body"),
        FieldMessage("steps.1.then.0.body", "and too long"),
        FieldMessage("steps.1.condition.tag", "bad tag"),
        FieldMessage("steps.2", "a wait needs one"),
        FieldMessage("steps.9.body", "gone"),
        FieldMessage("trigger.name", "no event"),
        FieldMessage(None, "whole"),
    ]
    assert forms.error_fields(errors, names) == {
        "steps.1.then.0.body": "bad body; and too long",
        "steps.1.condition.tag": "bad tag",
        "steps.2": "a wait needs one",
        "steps": "gone",
        "trigger.name": "no event",
        "_form": "whole",
    }


def test_it_leaves_out_a_branchs_other_alternatives_when_its_steps_are_in_error() -> None:
    draft = forms.from_definition(BRANCHED)
    draft["steps"][1]["then"][0]["body"] = ""
    data, _ = forms.to_definition(draft)
    with pytest.raises(DefinitionInvalid) as refused:
        parse(data)
    placed = forms.error_fields(refused.value.errors, forms.input_names(draft))
    assert list(placed) == ["steps.1.then.0.body"]


def test_it_drops_the_internal_step_id_beside_the_steps_own_input() -> None:
    draft = forms.from_definition(BRANCHED)
    names = forms.input_names(draft)
    errors = [
        FieldMessage("steps.1.then.0.body", "step step-2.then-1: %FRISTNAME% is not a field"),
        FieldMessage("steps.2", "step wait: it waits: too long"),
        FieldMessage(None, "step step-9: whole"),
    ]
    assert forms.error_fields(errors, names) == {
        "steps.1.then.0.body": "%FRISTNAME% is not a field",
        "steps.2": "it waits: too long",
        "_form": "step step-9: whole",  # on the form as a whole it tells which step
    }
