"""Accounts, plans and cohorts (R1, R2) on both databases."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session

from sendline.errors import AddonRequired, Conflict, InvalidInput, NotFound, SmsNotInPlan
from sendline.store.accounts import (
    Accounts,
    format_window,
    parse_rates,
    parse_time,
    parse_window,
)
from sendline.store.credits import Credits
from tests.store.conftest import LEGACY, MakeAccount


def test_it_handles_account_defaults(session: Session, make_account: MakeAccount) -> None:
    account = make_account("Acme Shoes")
    again = Accounts(session).get(account.id)
    assert again.name == "Acme Shoes"
    assert again.optout_clause == "Reply STOP to opt out"
    assert again.optout_language == "en"
    assert again.help_text.startswith("Acme Shoes: for help reply HELP")
    assert (again.max_segments, again.quiet_start, again.quiet_end) == (1, 480, 1260)
    assert again.frequency_cap == 3
    assert again.credit_rates == {"default": 1}
    assert again.sender_number is None
    assert again.created_at.tzinfo is not None
    assert Credits(session, account.id).balance().total == 0


def test_it_handles_the_cohort_boundary(make_account: MakeAccount) -> None:
    assert make_account(purchased_on=date(2023, 1, 2)).cohort == "legacy"
    assert make_account(purchased_on=date(2023, 1, 3)).cohort == "current"


@pytest.mark.parametrize("tier", ["lite", "starter"])
@pytest.mark.parametrize("purchased_on", [LEGACY, date(2024, 1, 1)])
def test_it_refuses_sms_below_plus(
    session: Session, make_account: MakeAccount, tier: str, purchased_on: date
) -> None:
    account = make_account(tier=tier, purchased_on=purchased_on, sms_addon=True)
    assert not account.sms_enabled
    assert account.monthly_free_credits == 0
    with pytest.raises(SmsNotInPlan) as caught:
        Credits(session, account.id).purchase(100)
    assert caught.value.code == "sms_not_in_plan"
    with pytest.raises(SmsNotInPlan):
        Credits(session, account.id).reserve(1)


@pytest.mark.parametrize("tier", ["plus", "professional", "enterprise"])
def test_it_refuses_sms_for_a_current_account_without_the_addon(
    session: Session, make_account: MakeAccount, tier: str
) -> None:
    account = make_account(tier=tier, purchased_on=date(2023, 1, 3), sms_addon=False)
    with pytest.raises(AddonRequired) as caught:
        Credits(session, account.id).purchase(10)
    assert caught.value.code == "sms_addon_required"
    assert Credits(session, account.id).ledger() == []


@pytest.mark.parametrize(
    ("tier", "allowance"), [("plus", 25), ("professional", 25), ("enterprise", 1000)]
)
def test_it_handles_legacy_accounts_without_the_addon(
    make_account: MakeAccount, tier: str, allowance: int
) -> None:
    legacy = make_account(tier=tier, purchased_on=date(2023, 1, 2), sms_addon=False)
    assert legacy.sms_enabled
    assert legacy.monthly_free_credits == allowance
    current = make_account(tier=tier, purchased_on=date(2023, 1, 3), sms_addon=True)
    assert current.sms_enabled
    assert current.monthly_free_credits == 0


def test_it_handles_plan_changes(session: Session, make_account: MakeAccount) -> None:
    account = make_account(tier="starter", purchased_on=LEGACY, sms_addon=False)
    assert not account.sms_enabled
    Accounts(session).change_plan(account.id, tier="plus", last_purchase_on=date(2025, 2, 1))
    assert account.cohort == "current" and not account.sms_enabled
    Accounts(session).change_plan(account.id, sms_addon=True)
    assert account.sms_enabled


def test_it_refuses_a_duplicate_account_name(make_account: MakeAccount) -> None:
    make_account("Acme")
    with pytest.raises(Conflict):
        make_account("Acme")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_segments", 0),
        ("max_segments", 11),
        ("frequency_cap", 0),
        ("quiet_start", 1300),
        ("credit_rates", {"GB": 2}),
        ("credit_rates", {"default": 0}),
        ("credit_rates", {"default": 1, "gbr": 2}),
        ("optout_language", "English"),
        ("optout_clause", ""),
        ("sender_number", "06 12 34 56 78"),
        ("color", "blue"),
    ],
)
def test_it_refuses_bad_settings(make_account: MakeAccount, setting: str, value: object) -> None:
    with pytest.raises(InvalidInput):
        make_account(**{setting: value})


def test_it_handles_settings(session: Session, make_account: MakeAccount) -> None:
    account = make_account(
        max_segments=4,
        quiet_start=540,
        quiet_end=1200,
        credit_rates={"default": 1, "GB": 3},
        sender_number="(415) 892-1234",
        optout_language="fr-CA",
    )
    assert account.sender_number == "+14158921234"
    assert account.rate_for("GB") == 3 and account.rate_for("US") == 1
    assert account.credit_cost(2, "GB") == 6
    Accounts(session).update_settings(account.id, max_segments=10, frequency_cap=5)
    assert (account.max_segments, account.frequency_cap) == (10, 5)


def test_it_handles_lookup_by_name_or_id(session: Session, make_account: MakeAccount) -> None:
    account = make_account("Zeta")
    accounts = Accounts(session)
    assert accounts.resolve("Zeta").id == account.id
    assert accounts.resolve(str(account.id)).id == account.id
    assert [a.name for a in accounts.list()] == ["Zeta"]
    with pytest.raises(NotFound):
        accounts.resolve("Nope")


def test_it_handles_window_and_rate_parsing() -> None:
    assert parse_window("08:00-21:00") == (480, 1260)
    assert format_window(480, 1260) == "08:00-21:00"
    assert parse_rates(["GB=2", "default=1"]) == {"default": 1, "GB": 2}
    for bad in ("21:00-08:00", "8-21", "25:00-26:00"):
        with pytest.raises(InvalidInput):
            parse_window(bad)
    with pytest.raises(InvalidInput):
        parse_rates(["GB:2"])


@pytest.mark.parametrize("setting", ["optout_clause", "help_text"])
def test_it_refuses_a_clause_that_does_not_tell_how_to_opt_out(
    session: Session, make_account: MakeAccount, setting: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        make_account("Thankful", **{setting: "Thanks!"})
    assert caught.value.code == "invalid_optout_clause"
    assert "'Thanks!' does not tell how to opt out" in caught.value.message
    assert Accounts(session).find("Thankful") is None
    account = make_account("Clear", **{setting: "Text STOP to end"})
    with pytest.raises(InvalidInput, match="does not tell how to opt out"):
        Accounts(session).update(account.id, **{setting: "Stop by our store!"})
    with pytest.raises(InvalidInput, match="does not tell how to opt out"):
        Accounts(session).update_settings(account.id, **{setting: "Thanks!"})
    session.rollback()
    assert getattr(Accounts(session).get(account.id), setting) == "Text STOP to end"


def test_it_handles_plan_and_settings_in_one_update(
    session: Session, make_account: MakeAccount
) -> None:
    account = make_account(tier="plus", sms_addon=False)
    Accounts(session).update(
        account.id, tier="Enterprise", sms_addon=True, max_segments=3, quiet_end=1440
    )
    session.commit()
    again = Accounts(session).get(account.id)
    assert (again.tier, again.sms_addon, again.max_segments, again.quiet_end) == (
        "enterprise",
        True,
        3,
        1440,
    )


def test_it_refuses_an_update_with_one_bad_value_and_writes_nothing(
    session: Session, make_account: MakeAccount
) -> None:
    account = make_account(tier="plus")
    with pytest.raises(InvalidInput, match="tier"):
        Accounts(session).update(account.id, max_segments=5, tier="gold")
    with pytest.raises(InvalidInput, match="max segments"):
        Accounts(session).update(account.id, tier="enterprise", max_segments=50)
    session.commit()
    again = Accounts(session).get(account.id)
    assert (again.tier, again.max_segments) == ("plus", 1)


def test_it_refuses_ids_beyond_any_row_as_not_found(
    session: Session, make_account: MakeAccount
) -> None:
    make_account("Zeta")
    accounts = Accounts(session)
    for ref in ("1234567890123456789012345", "2147483648", "0", "٣"):
        with pytest.raises(NotFound):
            accounts.resolve(ref)
    with pytest.raises(NotFound):
        accounts.get(10**25)


def test_it_handles_time_parsing() -> None:
    assert (parse_time("08:30"), parse_time("24:00"), parse_time("0:00")) == (510, 1440, 0)
    for bad in ("24:01", "8", "08:60", "8h30"):
        with pytest.raises(InvalidInput):
            parse_time(bad)
