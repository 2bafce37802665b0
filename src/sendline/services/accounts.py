"""Accounts: create, change, show and list them, and their credits.

What an account's settings are, how each is given (a CLI option, an API field) and how
it is shown is one declarative table, `FIELDS`: adding a setting is one row there (the
store checks the value itself, see store/accounts.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import InvalidInput, NotFound
from sendline.services import AccountRef, resolve_account
from sendline.store.accounts import (
    Accounts,
    check_change,
    format_window,
    parse_rates,
    parse_time,
    parse_window,
)
from sendline.store.credit_values import Balance
from sendline.store.credits import Credits
from sendline.store.keyset import newest_first
from sendline.store.models import Account
from sendline.store.monthly import MonthlyResult, check_period, grant_monthly

Parse = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class AccountField:
    """One settable thing: its option name, what it sets and how it reads its value.

    `kind` is what the option takes: `str` (one text), `bool` (a --x/--no-x flag) or
    `list` (repeatable, e.g. one --rate per region). `name` is the field's name in the
    API (and in `AccountView`) when it is not the option's with underscores."""

    option: str
    help: str
    parse: Parse
    kind: type = str
    name: str = ""

    @property
    def key(self) -> str:
        """The field's name in the API: `max_segments`, `credit_rates`..."""
        return self.name or self.option.replace("-", "_")


def _text(column: str) -> Parse:
    return lambda value: {column: str(value)}


def _whole(column: str) -> Parse:
    def parse(value: Any) -> dict[str, Any]:
        text = str(value).strip()
        if isinstance(value, bool) or not (text.isascii() and text.lstrip("-").isdigit()):
            raise InvalidInput(f"{value!r} is not a whole number")
        return {column: int(text)}

    return parse


def _flag(column: str) -> Parse:
    return lambda value: {column: value}


def _day(value: Any) -> dict[str, Any]:
    if isinstance(value, date):
        return {"last_purchase_on": value}
    try:
        return {"last_purchase_on": date.fromisoformat(str(value).strip())}
    except ValueError:
        raise InvalidInput(f"{value!r} must be a date YYYY-MM-DD") from None


def _window(value: Any) -> dict[str, Any]:
    start, end = parse_window(str(value))
    return {"quiet_start": start, "quiet_end": end}


def _time(column: str) -> Parse:
    return lambda value: {column: parse_time(str(value))}


def _rates(value: Any) -> dict[str, Any]:
    # The CLI gives `GB=2` items; the API a JSON object, read the same way (every rate
    # a whole number, `default` 1 unless given).
    if isinstance(value, Mapping):
        value = [f"{region}={rate}" for region, rate in value.items()]
    return {"credit_rates": parse_rates(list(value))}


# Every account setting a user can change, in the order `accounts show` lists them.
FIELDS: tuple[AccountField, ...] = (
    AccountField(
        "line", "Product line: marketing or sales.", _text("product_line"), str, "product_line"
    ),
    AccountField("tier", "lite, starter, plus, professional or enterprise.", _text("tier")),
    AccountField("sms-addon", "Bought the SMS add-on (R1, R2).", _flag("sms_addon"), bool),
    AccountField(
        "purchased-on",
        "Date of the last purchase or upgrade (the cohort).",
        _day,
        str,
        "last_purchase_on",
    ),
    AccountField(
        "sender", "The from-number (E.164).", _text("sender_number"), str, "sender_number"
    ),
    AccountField("quiet-hours", "Local sending window, e.g. 08:00-21:00.", _window),
    AccountField("quiet-start", "Sending window start, e.g. 08:00.", _time("quiet_start")),
    AccountField("quiet-end", "Sending window end, e.g. 21:00.", _time("quiet_end")),
    AccountField("frequency-cap", "Texts per contact per 24 h.", _whole("frequency_cap")),
    AccountField("max-segments", "Segments per message (1-10).", _whole("max_segments")),
    AccountField("optout-clause", "Opt-out clause (must say how).", _text("optout_clause")),
    AccountField("optout-language", "Its language (en, fr...).", _text("optout_language")),
    AccountField(
        "optout-clause-policy",
        "every_message, or every_30_days (at most once per 30 days per contact).",
        _text("optout_clause_policy"),
    ),
    AccountField("help-text", "Reply to HELP (must say how to opt out).", _text("help_text")),
    AccountField("rate", "Credits per segment: default=1, GB=2...", _rates, list, "credit_rates"),
)
FIELDS_BY_OPTION = {field.option: field for field in FIELDS}
FIELDS_BY_KEY = {field.key: field for field in FIELDS}


def parse_changes(values: Mapping[str, Any], *, by_key: bool = False) -> dict[str, Any]:
    """Options as given (`{"max-segments": "2", ...}`, or with `by_key` the API's field
    names, `{"max_segments": 2}`; None = not given) -> the checked account columns.
    Every value is read before anything is written; all the bad ones are reported at
    once, each by its name, and the error's `field` is the first bad one's API name."""
    known = FIELDS_BY_KEY if by_key else FIELDS_BY_OPTION
    changes: dict[str, Any] = {}
    setter: dict[str, str] = {}
    problems: list[str] = []
    codes: set[str] = set()
    first: str | None = None
    for given, value in values.items():
        if value is None or value == []:
            continue
        field = known.get(given)
        label = given if by_key else f"--{given}"
        if field is None:
            raise InvalidInput(f"{label[:80]} is not an account setting", field=given[:80])
        try:
            columns = {name: check_change(name, v) for name, v in field.parse(value).items()}
        except InvalidInput as exc:
            problems.append(f"{label}: {exc.message}")
            codes.add(exc.code)
            first = first or field.key
            continue
        for name, checked in columns.items():
            if name in setter:
                problems.append(f"{label} and {setter[name]} both set {name}: give one")
                first = first or field.key
            setter[name] = label
            changes[name] = checked
    if problems:  # one code when every problem has the same (e.g. invalid_optout_clause)
        code = codes.pop() if len(codes) == 1 else None
        raise InvalidInput("; ".join(problems), code=code, field=first)
    return changes


@dataclass(frozen=True)
class AccountView:
    """An account as the shells show it: its plan, SMS state, balance and settings."""

    id: int
    name: str
    product_line: str
    tier: str
    last_purchase_on: date
    cohort: str
    sms_addon: bool
    sms_state: str  # "enabled" or "refused (code)"
    monthly_free_credits: int
    balance: Balance
    optout_clause: str
    optout_language: str
    optout_clause_policy: str
    help_text: str
    max_segments: int
    quiet_start: int
    quiet_end: int
    frequency_cap: int
    credit_rates: dict[str, int]
    sender_number: str | None

    @property
    def window(self) -> str:
        return format_window(self.quiet_start, self.quiet_end)


def view_of(session: Session, account: Account) -> AccountView:
    refusal = account.sms_refusal()
    return AccountView(
        id=account.id,
        name=account.name,
        product_line=account.product_line,
        tier=account.tier,
        last_purchase_on=account.last_purchase_on,
        cohort=account.cohort,
        sms_addon=account.sms_addon,
        sms_state="enabled" if refusal is None else f"refused ({refusal.code})",
        monthly_free_credits=account.monthly_free_credits,
        balance=Credits(session, account.id).balance(),
        optout_clause=account.optout_clause,
        optout_language=account.optout_language,
        optout_clause_policy=account.optout_clause_policy,
        help_text=account.help_text,
        max_segments=account.max_segments,
        quiet_start=account.quiet_start,
        quiet_end=account.quiet_end,
        frequency_cap=account.frequency_cap,
        credit_rates={str(k): int(v) for k, v in account.credit_rates.items()},
        sender_number=account.sender_number,
    )


def create_account(
    sessions: sessionmaker[Session],
    name: str,
    *,
    product_line: str,
    tier: str,
    purchased_on: date,
    sms_addon: bool = False,
    settings: Mapping[str, Any] | None = None,
) -> AccountView:
    """A new account with an empty balance; `settings` as `parse_changes` returns them."""
    with sessions.begin() as session:
        account = Accounts(session).create(
            name,
            product_line=product_line,
            tier=tier,
            last_purchase_on=purchased_on,
            sms_addon=sms_addon,
            **dict(settings or {}),
        )
        return view_of(session, account)


def update_account(
    sessions: sessionmaker[Session], ref: AccountRef, changes: Mapping[str, Any]
) -> AccountView:
    """Change an account's plan and settings (columns as `parse_changes` returns them);
    all or nothing."""
    if not changes:
        raise InvalidInput("nothing to change: give at least one setting (see --help)")
    with sessions.begin() as session:
        account = resolve_account(session, ref)
        return view_of(session, Accounts(session).update(account.id, **changes))


def show_account(sessions: sessionmaker[Session], ref: str) -> AccountView:
    with sessions.begin() as session:
        return view_of(session, Accounts(session).resolve(ref))


def account_settings(sessions: sessionmaker[Session], account_id: int) -> AccountView:
    """An account by id (an API key's), never by name."""
    with sessions.begin() as session:
        account = session.get(Account, account_id)
        if account is None:
            raise NotFound(f"no account {account_id}")
        return view_of(session, account)


def list_accounts(sessions: sessionmaker[Session]) -> list[AccountView]:
    with sessions.begin() as session:
        return [view_of(session, account) for account in Accounts(session).list()]


def account_page(
    sessions: sessionmaker[Session], *, limit: int, before_id: int | None = None
) -> list[AccountView]:
    """Up to `limit` accounts, newest first, with ids below `before_id` (a page of
    the operator's list; the API fetches one more to know whether a page follows)."""
    query = newest_first(select(Account), Account.id, before_id, limit)
    with sessions.begin() as session:
        return [view_of(session, account) for account in session.scalars(query)]


def purchase_credits(
    sessions: sessionmaker[Session], ref: str | None, amount: int, *, note: str | None = None
) -> AccountView:
    """Record a purchase of credits (they never expire); the account afterwards."""
    with sessions.begin() as session:
        account = resolve_account(session, ref)
        Credits(session, account.id).purchase(amount, note=note)
        return view_of(session, account)


def grant_monthly_credits(
    sessions: sessionmaker[Session], period: str, ref: str | None = None
) -> list[MonthlyResult]:
    """R2's monthly job for every account (or `ref`): safe to run twice."""
    month = check_period(period)
    with sessions.begin() as session:
        ids = [resolve_account(session, ref).id] if ref is not None else None
        return grant_monthly(session, month, account_ids=ids)
