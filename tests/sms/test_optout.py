"""R11: detecting an opt-out clause in an outgoing body, and appending one when missing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendline.sms.optout import DEFAULT_CLAUSE, has_optout_clause, with_optout_clause

CLAUSES = [
    "Reply STOP to opt out",
    "reply stop to unsubscribe",
    "text stop to quit",
    "Txt STOP 2 end",
    "STOP to end",
    "Send STOP to cancel",
    "Reply STOP to stop",
    "Text STOP to 12345 to opt out",
    "Reply STOP=end",
    "STOP2END",
    "Reply END to unsubscribe",
    "Reply UNSUBSCRIBE to opt out",
    "Opt out: reply STOP",
    "Répondez STOP pour vous désabonner",
    "Repondez STOP",
    "Envoyez STOP au 36180",
    "STOP au 36105",
    "Reply ARRET to unsubscribe",
    "Msg&data rates may apply. Reply STOP to opt out.",
    "(reply STOP to unsub)",
    # more shapes seen in the wild
    "Reply ARRÊT pour vous désabonner",
    'Reply "STOP" to opt out',
    "Reply with the word STOP to stop receiving these",
    "Reply back STOP",
    "Text: STOP",
    "REPLY STOP TO OPT OUT",
    "Répondez\u202f«\u202fSTOP\u202f»",
    "Répondez « STOP » pour ne plus recevoir nos SMS",
    "STOP SMS au 36111",
    "STOP SMS 36180",
    "Reply Y to confirm, STOP to end",
    "STOP to opt out at any time",
    "STOP to opt-out of texts",
    "Reply HELP for help, STOP to cancel",
    "Reply STOPALL to stop all messages",
    "Reply OPT-OUT to stop",
    "Big sale today!\nReply STOP to opt out",
    "Sale! https://shop.example.com/sale Reply STOP to opt out",
    "Txt STOP",
    "Respond STOP to be removed",
    "QUIT to quit",
]

NOT_CLAUSES = [
    "Stop by our store",
    "STOPover deals",
    "non-stop savings",
    "Don't stop believing",
    "We stop serving at 9",
    "bus stop sale",
    "Stop! Big sale",
    "",
    "stopwatch deals",
    "Shop nonstop",
    "New arrivals at https://ex.com/stop",
    # more traps
    "See https://ex.com/stop2end",
    "www.stop-to-end.example",
    "Mail stop@example.com to end",
    "Reply CANCEL to cancel your appointment",
    "Reply QUIT to cancel your order",
    "Walk from the bus stop to end of the street",
    "Sale ends Sunday, don't miss it",
    "The weekend starts now: 20% off",
    "Stop 2 days left",
    "stop 2000 deals inside",
    "Reply YES to confirm",
    "Text us anytime",
    "Unstoppable prices",
    "END of season sale",
    "Reply END to end of season",
    "Reply by the end of the day",
    "Text: stop by our store today",
    "Message: Stop in for free coffee",
    "Send stop-loss alerts to your broker",
]


@pytest.mark.parametrize("body", CLAUSES)
def test_it_detects_an_instruction_to_send_an_opt_out_keyword(body: str) -> None:
    assert has_optout_clause(body)


@pytest.mark.parametrize("body", NOT_CLAUSES)
def test_it_is_not_fooled_by_a_stop_that_is_not_an_instruction(body: str) -> None:
    assert not has_optout_clause(body)


@pytest.mark.parametrize("body", CLAUSES)
def test_it_leaves_a_body_with_a_clause_unchanged(body: str) -> None:
    assert with_optout_clause(body) == body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Big sale today!", "Big sale today!\nReply STOP to opt out"),
        ("Big sale today!  \n\n", "Big sale today!\nReply STOP to opt out"),
        ("Stop by our store", "Stop by our store\nReply STOP to opt out"),
        ("", "Reply STOP to opt out"),
        ("   \n\t", "Reply STOP to opt out"),
    ],
)
def test_it_appends_the_default_clause_on_its_own_line(body: str, expected: str) -> None:
    assert with_optout_clause(body) == expected


def test_it_appends_an_account_clause() -> None:
    body = "Soldes ce week-end !"
    clause = "Répondez STOP pour vous désabonner"
    assert with_optout_clause(body, clause) == f"{body}\n{clause}"


def test_it_keeps_appending_idempotent_for_a_clause_it_cannot_recognise() -> None:
    clause = "Opt out at example.com/optout"
    once = with_optout_clause("Hello", clause)
    assert once == "Hello\nOpt out at example.com/optout"
    assert with_optout_clause(once, clause) == once


TEXT = st.text(st.characters(exclude_categories=()), max_size=300)
RECOGNISED = st.sampled_from(
    [DEFAULT_CLAUSE, "Txt STOP 2 end", "Répondez STOP pour vous désabonner"]
)


@given(TEXT)
def test_it_always_leaves_a_clause_after_appending_the_default(body: str) -> None:
    assert has_optout_clause(with_optout_clause(body))


@given(TEXT, RECOGNISED)
def test_it_recognises_every_supported_clause_after_any_text(body: str, clause: str) -> None:
    assert has_optout_clause(with_optout_clause(body, clause))


@given(TEXT, RECOGNISED)
def test_it_appends_idempotently(body: str, clause: str) -> None:
    once = with_optout_clause(body, clause)
    assert with_optout_clause(once, clause) == once


@given(TEXT)
def test_it_never_raises_on_arbitrary_text(body: str) -> None:
    assert isinstance(has_optout_clause(body), bool)
