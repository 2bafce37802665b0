"""Personalization tags: finding, compiling (unknown tags refused) and rendering."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendline.sms.templates import (
    STANDARD_TAGS,
    Tag,
    Template,
    TemplateError,
    escape,
    find_tags,
    normalize_tag_name,
    unknown_tags,
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi %FIRSTNAME%", [Tag("FIRSTNAME", None, 3, 14)]),
        ("Hi %firstname|there%!", [Tag("FIRSTNAME", "there", 3, 20)]),
        ("%FirstName|%", [Tag("FIRSTNAME", "", 0, 12)]),
        ("Order %EVENT.ORDER_ID%", [Tag("EVENT.ORDER_ID", None, 6, 22)]),
        ("%event.order.id%", [Tag("EVENT.ORDER.ID", None, 0, 16)]),
        ("%FIELD_2%", [Tag("FIELD_2", None, 0, 9)]),
        ("%A%%B%", [Tag("A", None, 0, 3), Tag("B", None, 3, 6)]),
        ("%FIRSTNAME|dear friend, hi%", [Tag("FIRSTNAME", "dear friend, hi", 0, 27)]),
    ],
)
def test_it_finds_well_formed_tags(source: str, expected: list[Tag]) -> None:
    assert find_tags(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "Get 20% off, 30% more",
        "100%",
        "%",
        "%%",
        "%%FIRSTNAME%%",  # escaped: the literal text %FIRSTNAME%
        "% FIRSTNAME%",
        "%FIRST NAME%",
        "%1ST%",
        "%_X%",
        "%FIRSTNAME",
        "%FIRSTNAME|there",
        "%FIRSTNAME|line\nbreak%",
        "%EVENT.%",
        "%EVENT..X%",
        "%.X%",
        "%É%",
        "50%/50%",
    ],
)
def test_it_treats_a_percent_that_starts_no_tag_as_text(source: str) -> None:
    assert find_tags(source) == []
    assert Template.compile(source).tags == ()


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("Hi %FIRSTNAME%!", {"FIRSTNAME": "Ann"}, "Hi Ann!"),
        ("Hi %firstname%!", {"FIRSTNAME": "Ann"}, "Hi Ann!"),
        ("Hi %FIRSTNAME|there%!", {"FIRSTNAME": "Ann"}, "Hi Ann!"),
        ("Hi %FIRSTNAME|there%!", {"FIRSTNAME": ""}, "Hi there!"),
        ("Hi %FIRSTNAME|there%!", {"FIRSTNAME": "   "}, "Hi there!"),
        ("Hi %FIRSTNAME|there%!", {"FIRSTNAME": None}, "Hi there!"),
        ("Hi %FIRSTNAME|there%!", {}, "Hi there!"),
        ("Hi %FIRSTNAME%!", {}, "Hi !"),
        ("Get 20% off, 30% more", {}, "Get 20% off, 30% more"),
        ("100%% sure, %FIRSTNAME%", {"FIRSTNAME": "Bo"}, "100% sure, Bo"),
        ("%%FIRSTNAME%%", {"FIRSTNAME": "Bo"}, "%FIRSTNAME%"),
        ("%FIRSTNAME%%LASTNAME%", {"FIRSTNAME": "Bo", "LASTNAME": "Li"}, "BoLi"),
        ("%EMAIL% / %PHONE%", {"EMAIL": "a@b.c", "PHONE": "+1"}, "a@b.c / +1"),
        ("Value: %FIRSTNAME%", {"FIRSTNAME": "%LASTNAME%"}, "Value: %LASTNAME%"),
    ],
)
def test_it_renders_values_and_fallbacks(
    source: str, values: dict[str, str | None], expected: str
) -> None:
    assert Template.compile(source).render(values) == expected


def test_it_renders_custom_fields_and_event_values() -> None:
    template = Template.compile(
        "%VIP_LEVEL% order %event.order_id|?% ships %Event.Date%", ["vip level", "EVENT.*"]
    )
    assert template.tags == ("VIP_LEVEL", "EVENT.ORDER_ID", "EVENT.DATE")
    values = {"VIP_LEVEL": "Gold", "EVENT.ORDER_ID": "A-1", "EVENT.DATE": "today"}
    assert template.render(values) == "Gold order A-1 ships today"


@pytest.mark.parametrize(
    ("source", "known", "unknown"),
    [
        ("Hi %FRISTNAME%", [], ("FRISTNAME",)),
        ("%FOO% %firstname% %bar.x% %foo%", [], ("FOO", "BAR.X")),
        ("%EVENT.ORDER_ID%", [], ("EVENT.ORDER_ID",)),
        ("%EVENT.ORDER_ID% %ORDER.X%", ["EVENT.*"], ("ORDER.X",)),
        ("%EVENTS.X%", ["EVENT.*"], ("EVENTS.X",)),
        ("%EVENT%", ["EVENT.*"], ("EVENT",)),
        ("%CITY% %TOWN%", ["city"], ("TOWN",)),
    ],
)
def test_it_refuses_unknown_tags_naming_every_one(
    source: str, known: list[str], unknown: tuple[str, ...]
) -> None:
    with pytest.raises(TemplateError) as raised:
        Template.compile(source, known)
    assert raised.value.code == "unknown_tag"
    assert raised.value.tags == unknown
    for name in unknown:
        assert f"%{name}%" in str(raised.value)
    assert unknown_tags(source, known) == unknown


@pytest.mark.parametrize(
    ("source", "known"),
    [
        ("%FIRSTNAME% %LASTNAME% %EMAIL% %PHONE%", []),
        ("%EVENT.ORDER_ID%", ["EVENT.*"]),
        ("%EVENT.ORDER_ID%", ["event.order_id"]),
        ("%EVENT.ORDER_ID%", ["EVENT"]),  # a bare prefix admits EVENT.x too
        ("%FIELD_NAME%", ["Field-Name"]),
        ("%PRENOM%", ["Prénom"]),
    ],
)
def test_it_accepts_known_tags(source: str, known: list[str]) -> None:
    assert Template.compile(source, known).source == source
    assert unknown_tags(source, known) == ()


def test_it_makes_template_error_a_value_error() -> None:
    assert issubclass(TemplateError, ValueError)


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("first name", "FIRST_NAME"),
        ("Field-Name", "FIELD_NAME"),
        ("  Loyalty   points ", "LOYALTY_POINTS"),
        ("Prénom", "PRENOM"),
        ("VIP_Level", "VIP_LEVEL"),
        ("order #", "ORDER"),
        ("a--b__c", "A_B_C"),
    ],
)
def test_it_normalizes_a_field_display_name_to_its_tag(name: str, tag: str) -> None:
    assert normalize_tag_name(name) == tag


NAMES = sorted(STANDARD_TAGS) + ["CITY", "EVENT.ORDER_ID"]
NO_PERCENT = st.text(st.characters(exclude_characters="%"))
TAG = st.tuples(
    st.sampled_from(NAMES),
    st.sampled_from([str.upper, str.lower, str.title]),
    st.none() | st.text(st.characters(exclude_characters="%\r\n"), max_size=10),
)


def _tag_source(name: str, case: Callable[[str], str], fallback: str | None) -> str:
    written = case(name)
    return f"%{written}%" if fallback is None else f"%{written}|{fallback}%"


@given(st.lists(st.tuples(NO_PERCENT, TAG), max_size=6), NO_PERCENT, st.data())
def test_it_leaves_no_known_tag_when_every_value_is_present(
    pieces: list[tuple[str, tuple[str, Callable[[str], str], str | None]]],
    tail: str,
    data: st.DataObject,
) -> None:
    source = "".join(text + _tag_source(*tag) for text, tag in pieces) + tail
    template = Template.compile(source, ["CITY", "EVENT.*"])
    values = {name: data.draw(NO_PERCENT.filter(str.strip)) for name in template.tags}
    rendered = template.render(values)
    assert not [t for t in find_tags(rendered) if t.name in NAMES]
    expected = "".join(text + values[tag[0]] for text, tag in pieces) + tail
    assert rendered == expected


@given(st.text(st.characters(exclude_categories=())))
def test_it_renders_a_source_without_tags_unchanged(text: str) -> None:
    if find_tags(text) or "%%" in text:
        return
    assert Template.compile(text).render({}) == text


@given(st.text(st.characters(exclude_categories=())))
def test_it_round_trips_any_escaped_text(text: str) -> None:
    template = Template.compile(escape(text))
    assert template.tags == ()
    assert template.render({}) == text


@given(st.text(st.characters(exclude_categories=())), st.text(max_size=20))
def test_it_never_fails_to_find_tags(source: str, value: str) -> None:
    tags = find_tags(source)
    names = {t.name for t in tags}
    template = Template.compile(source, names)
    assert set(template.tags) == names
    assert isinstance(template.render(dict.fromkeys(names, value)), str)
