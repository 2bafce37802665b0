"""services/accounts.py on both databases: the settings table, update all or nothing."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import InvalidInput, NotFound
from sendline.services.accounts import (
    FIELDS,
    create_account,
    list_accounts,
    parse_changes,
    purchase_credits,
    show_account,
    update_account,
)


@pytest.fixture
def sessions(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    create_account(
        session_factory,
        "Acme",
        product_line="marketing",
        tier="plus",
        purchased_on=date(2022, 5, 1),
    )
    return session_factory


def test_it_handles_every_setting_of_the_table(sessions: sessionmaker[Session]) -> None:
    values = {
        "line": "sales",
        "tier": "enterprise",
        "sms-addon": True,
        "purchased-on": "2024-02-01",
        "sender": "(415) 892-1234",
        "quiet-start": "07:30",
        "quiet-end": "22:00",
        "frequency-cap": "5",
        "max-segments": "3",
        "optout-clause": "Text STOP to end",
        "optout-language": "fr",
        "optout-clause-policy": "every_30_days",
        "help-text": "Acme: help at acme.test. Reply STOP to opt out.",
        "rate": ["GB=2", "FR=3"],
    }
    assert set(values) | {"quiet-hours"} == {field.option for field in FIELDS}
    view = update_account(sessions, "Acme", parse_changes(values))
    assert (view.product_line, view.tier, view.sms_addon, view.cohort) == (
        "sales",
        "enterprise",
        True,
        "current",
    )
    assert (view.sender_number, view.window, view.frequency_cap, view.max_segments) == (
        "+14158921234",
        "07:30-22:00",
        5,
        3,
    )
    assert (view.optout_clause, view.optout_language) == ("Text STOP to end", "fr")
    assert view.optout_clause_policy == "every_30_days"
    assert view.credit_rates == {"default": 1, "GB": 2, "FR": 3}
    assert show_account(sessions, "Acme") == view
    view = update_account(sessions, str(view.id), parse_changes({"quiet-hours": "09:00-20:00"}))
    assert view.window == "09:00-20:00"


def test_it_refuses_bad_options_by_name_and_writes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    before = show_account(sessions, "Acme")
    with pytest.raises(InvalidInput) as caught:
        parse_changes(
            {"max-segments": "many", "tier": "plus", "optout-clause": "Thanks!", "rate": ["GB2"]}
        )
    message = caught.value.message
    assert "--max-segments: 'many' is not a whole number" in message
    assert "--optout-clause: opt-out clause 'Thanks!' does not tell how to opt out" in message
    assert "--rate: credit rate 'GB2'" in message and "--tier" not in message
    with pytest.raises(InvalidInput, match="--quiet-hours and --quiet-start both set"):
        parse_changes({"quiet-start": "07:00", "quiet-hours": "08:00-20:00"})
    with pytest.raises(InvalidInput, match="--colour is not an account setting"):
        parse_changes({"colour": "blue"})
    # Each value is fine alone, together they are not: the store refuses, nothing written.
    with pytest.raises(InvalidInput, match="sending window 22:00-21:00"):
        update_account(sessions, "Acme", parse_changes({"quiet-start": "22:00", "tier": "lite"}))
    with pytest.raises(InvalidInput, match="nothing to change"):
        update_account(sessions, "Acme", parse_changes({"tier": None, "rate": []}))
    assert show_account(sessions, "Acme") == before


def test_it_keeps_the_clause_code_when_it_is_the_only_problem() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_changes({"help-text": "Call us!"})
    assert caught.value.code == "invalid_optout_clause"


def test_it_refuses_unknown_accounts(sessions: sessionmaker[Session]) -> None:
    for ref in ("Nope", "99", "1234567890123456789012345"):
        with pytest.raises(NotFound):
            update_account(sessions, ref, {"max_segments": 2})
        with pytest.raises(NotFound):
            show_account(sessions, ref)


def test_it_handles_listing_and_purchases(sessions: sessionmaker[Session]) -> None:
    bought = purchase_credits(sessions, None, 40, note="invoice 7")
    assert bought.balance.purchased == 40
    assert [(a.name, a.balance.available) for a in list_accounts(sessions)] == [("Acme", 40)]
