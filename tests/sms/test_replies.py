"""R12: classifying inbound replies: keyword actions, free-text revocations, nothing."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendline.sms.optout import (
    HELP_KEYWORDS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    ReplyAction,
    classify_reply,
)

OPT_OUTS = [
    "STOP",
    "stop",
    "Stop!!",
    " STOP. ",
    "«stop»",
    "stop all",
    "STOPALL",
    "UNSUBSCRIBE",
    "UN-SUBSCRIBE",
    "Cancel",
    "END",
    "quit",
    "OPTOUT",
    "Opt-out",
    "opt out",
    "Revoke",
    "ARRET",
    "ARRET!",
    "Arrêt",
    "ARRÊT",
    "Arre\u0302t",  # decomposed accent
    "ＳＴＯＰ",  # full-width
    "\n\tStop\r\n",
    "'STOP'",
    "S.T.O.P",
    "\ud800stop",  # a lone surrogate is noise around the keyword
]

OPT_INS = ["START", "start", "Unstop", "YES", "yes!", " Yes. "]
HELPS = ["HELP", "help?", "Info", "AIDE", "Aide!"]

REVIEWS = [
    "please stop texting me",
    "stop sending me messages",
    "remove me from this list",
    "take me off your list",
    "unsubscribe me please",
    "I want to opt out",
    "don't text me anymore",
    "no more texts",
    "leave me alone",
    "wrong number, stop",
    "arrêtez de m'envoyer des messages",
    "désabonnez-moi",
    "STOP please",
    "stop it",
    # more ways people say it
    "STOP STOP",
    "ok stop",
    "Stop now",
    "How do I unsubscribe?",
    "unsubcribe",
    "Please remove my number",
    "Do not contact me again",
    "quit texting me",
    "cancel my texts",
    "I'm not interested",
    "Wrong number",
    "Stop all these messages",
    "Merci de ne plus m'envoyer de SMS, stop",
    "Je ne veux plus recevoir vos messages",
    "Retirez-moi de la liste",
    "STOP!!! this is spam",
    "STOP2",
    "Stop svp",
]

NONES = [
    "Thanks!",
    "What time do you close?",
    "Can you stop by at 5?",
    "Can you please stop by at 5?",
    "YES I'll come",
    "",
    "   ",
    "!!!",
    "Don't forget to send me the receipt",
    "I want to cancel my appointment",
    "Never mind, I'll call you",
    "Please remove the item from my cart",
    "See you at the weekend",
    "stop by tomorrow?",
    "startup news",
    "helpful, thanks",
]


@pytest.mark.parametrize("body", OPT_OUTS)
def test_it_opts_out_on_a_bare_opt_out_keyword(body: str) -> None:
    assert classify_reply(body) is ReplyAction.OPT_OUT


@pytest.mark.parametrize("body", OPT_INS)
def test_it_opts_in_on_a_bare_opt_in_keyword(body: str) -> None:
    assert classify_reply(body) is ReplyAction.OPT_IN


@pytest.mark.parametrize("body", HELPS)
def test_it_answers_help_on_a_bare_help_keyword(body: str) -> None:
    assert classify_reply(body) is ReplyAction.HELP


@pytest.mark.parametrize("body", REVIEWS)
def test_it_flags_a_free_text_revocation_for_review(body: str) -> None:
    assert classify_reply(body) is ReplyAction.REVIEW


@pytest.mark.parametrize("body", NONES)
def test_it_ignores_replies_that_ask_for_nothing(body: str) -> None:
    assert classify_reply(body) is ReplyAction.NONE


@pytest.mark.parametrize(
    ("keywords", "action"),
    [
        (OPT_OUT_KEYWORDS, ReplyAction.OPT_OUT),
        (OPT_IN_KEYWORDS, ReplyAction.OPT_IN),
        (HELP_KEYWORDS, ReplyAction.HELP),
    ],
)
def test_it_maps_every_listed_keyword_in_any_case(
    keywords: frozenset[str], action: ReplyAction
) -> None:
    for keyword in keywords:
        assert classify_reply(keyword) is action
        assert classify_reply(f" {keyword.upper()}! ") is action


def test_it_keeps_the_keyword_sets_disjoint() -> None:
    assert not OPT_OUT_KEYWORDS & OPT_IN_KEYWORDS
    assert not OPT_OUT_KEYWORDS & HELP_KEYWORDS
    assert not OPT_IN_KEYWORDS & HELP_KEYWORDS


def test_it_only_looks_at_the_start_of_a_long_body_for_review() -> None:
    assert classify_reply("x " * 1000 + "please stop texting me") is ReplyAction.NONE


@pytest.mark.parametrize(
    "body",
    [
        "x" * 100_000,
        " " * 100_000 + "STOP",
        "STOP" + "!" * 100_000,
        "stop by " * 12_500,
        "please stop texting me " * 5_000,
    ],
)
def test_it_returns_on_a_100_kb_body(body: str) -> None:
    # Not a speed target (those are in `make bench`): a guard against catastrophic
    # backtracking, which takes minutes on such bodies; a linear scan takes milliseconds.
    start = time.perf_counter()
    classify_reply(body)
    assert time.perf_counter() - start < 2.0


def test_it_stores_actions_as_stable_strings() -> None:
    assert [a.value for a in ReplyAction] == ["opt_out", "opt_in", "help", "review", "none"]


@given(st.text(st.characters(exclude_categories=())))
def test_it_never_raises_on_arbitrary_text(body: str) -> None:
    assert classify_reply(body) in set(ReplyAction)


@given(st.sampled_from(sorted(OPT_OUT_KEYWORDS)), st.text(" .,!?-«»\"'\t\n"), st.text(" .!"))
def test_it_ignores_surrounding_spaces_and_punctuation(keyword: str, left: str, right: str) -> None:
    assert classify_reply(f"{left}{keyword}{right}") is ReplyAction.OPT_OUT
