"""Ids given by people: what can name a row, and what cannot (never an overflow)."""

from __future__ import annotations

import pytest

from sendline.store.ids import MAX_ID, is_id, parse_id


@pytest.mark.parametrize(("text", "expected"), [("42", 42), (" 7 ", 7), (str(MAX_ID), MAX_ID)])
def test_it_handles_ids(text: str, expected: int) -> None:
    assert parse_id(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "0", "-1", "1.5", "x1", "1234567890123456789012345", str(MAX_ID + 1), "١٢", "9" * 5000],
)
def test_it_refuses_what_cannot_be_an_id(text: str) -> None:
    assert parse_id(text) is None


def test_it_handles_the_integer_range() -> None:
    assert is_id(1) and is_id(MAX_ID)
    assert not is_id(0) and not is_id(MAX_ID + 1) and not is_id(10**25)
