"""The message check: R9-R11 and templates composed, as `sendline check message` shows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendline.shortener_files import packaged_shorteners
from sendline.sms.check import MessageRules, check_message
from sendline.sms.optout import has_optout_clause

RULES = MessageRules(shorteners=packaged_shorteners())


def test_it_appends_the_clause_and_counts_it() -> None:
    result = check_message("Spring sale: 20% off today", RULES)
    assert result.ok
    assert not result.opt_out_clause
    assert result.sent_body == "Spring sale: 20% off today\nReply STOP to opt out"
    assert (result.segments, result.sent_segments) == (1, 1)
    assert result.sent_characters == len(result.sent_body)


def test_it_keeps_a_body_that_already_has_a_clause() -> None:
    body = "Sale today. Txt STOP 2 end"
    result = check_message(body, RULES)
    assert result.opt_out_clause
    assert result.sent_body == body


def test_it_refuses_a_body_that_the_clause_pushes_past_160() -> None:
    body = "x" * 150
    result = check_message(body, RULES)
    assert result.segments == 1
    assert result.sent_segments == 2
    assert result.violation_codes() == ("too_long",)
    assert "160" in result.violations[0].detail


def test_it_allows_more_segments_when_the_account_does() -> None:
    rules = MessageRules(shorteners=packaged_shorteners(), max_segments=2)
    assert check_message("x" * 150, rules).ok
    too_long = check_message("x" * 300, rules)
    assert too_long.violation_codes() == ("too_long",)
    assert "306" in too_long.violations[0].detail  # 2 x 153 GSM-7 characters


def test_it_names_public_shortener_links() -> None:
    result = check_message("Deals at bit.ly/deal and shop.example.com", RULES)
    assert result.violation_codes() == ("public_shortener",)
    assert result.violations[0].data == {"link": "bit.ly/deal", "host": "bit.ly"}
    assert "bit.ly/deal" in result.violations[0].detail


@pytest.mark.parametrize("body", ["", "   ", "\n\t"])
def test_it_refuses_an_empty_body(body: str) -> None:
    result = check_message(body, RULES)
    assert "empty" in result.violation_codes()
    assert result.sent_body == "Reply STOP to opt out"


def test_it_names_unknown_tags_but_knows_the_accounts_fields() -> None:
    result = check_message("Hi %FIRSTNAME%, your %COUPON% and %NOPE%", RULES)
    assert [v.data["tag"] for v in result.violations] == ["COUPON", "NOPE"]
    rules = MessageRules(shorteners=packaged_shorteners(), known_tags=frozenset({"coupon"}))
    assert [v.data["tag"] for v in check_message("%COUPON% %NOPE%", rules).violations] == ["NOPE"]


def test_it_does_not_read_tags_in_a_rendered_body() -> None:
    # A contact whose name contains "%X%" is text once rendered, not a tag.
    result = check_message("Hi %X%, sale today", RULES, rendered=True)
    assert result.ok


def test_it_explains_ucs2_and_how_to_avoid_it() -> None:
    body = "Don’t miss our “big” sale – today only, friends of the shop!"
    result = check_message(body, RULES)
    assert result.encoding.value == "UCS-2"
    (warning,) = result.warnings
    assert warning.code == "ucs2_forced"
    assert set(warning.data["characters"]) == {"’", "“", "”", "–"}
    assert warning.data["replacements"]["’"] == "'"
    suggested = warning.data["suggested_body"]
    assert check_message(suggested, RULES).encoding.value == "GSM-7"


def test_it_refuses_clauses_that_do_not_say_how_to_opt_out() -> None:
    with pytest.raises(ValueError, match="does not tell how to opt out"):
        MessageRules(shorteners=packaged_shorteners(), clause="Thanks!")
    with pytest.raises(ValueError, match="max_segments"):
        MessageRules(shorteners=packaged_shorteners(), max_segments=11)


def test_it_answers_a_100_kb_body() -> None:
    result = check_message("a" * 100_000, RULES)
    assert result.segments == -(-100_000 // 153)
    assert result.violation_codes() == ("too_long",)


@given(st.text(max_size=400))
def test_the_sent_body_always_has_a_clause(body: str) -> None:
    result = check_message(body, RULES)
    assert has_optout_clause(result.sent_body)
    if result.opt_out_clause:
        assert result.sent_body == body
    assert result.ok == (not result.violations)


@given(st.text(alphabet="abcdefghij klmnop,.!?0123456789", min_size=1, max_size=138))
def test_a_short_gsm_body_with_its_clause_fits_one_segment(body: str) -> None:
    result = check_message(body, RULES)
    if body.strip():
        assert result.sent_segments == 1
        assert "too_long" not in result.violation_codes()
