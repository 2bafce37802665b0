"""Accounts, their plan (R1, R2) and their sending settings.

Accounts are the tenants, so this is the one repository that is not scoped to an
account: it creates, finds and lists them. Every setting is checked here, before it
reaches the database's own CHECK constraints, so a bad value gets a readable error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sendline.errors import Conflict, InvalidInput, NotFound
from sendline.sms.optout import clause_problem
from sendline.sms.phone import check_phone
from sendline.store.ids import is_id, parse_id
from sendline.store.models import (
    DEFAULT_FREQUENCY_CAP,
    DEFAULT_OPTOUT_CLAUSE,
    DEFAULT_QUIET_END,
    DEFAULT_QUIET_START,
    OPTOUT_CLAUSE_POLICIES,
    PRODUCT_LINES,
    TIERS,
    Account,
    CreditBalance,
    default_help_text,
)

_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_REGION = re.compile(r"^[A-Z]{2}$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
MAX_RATE = 1000
SETTING_NAMES = frozenset(
    {
        "optout_clause",
        "optout_clause_policy",
        "optout_language",
        "help_text",
        "max_segments",
        "quiet_start",
        "quiet_end",
        "frequency_cap",
        "credit_rates",
        "sender_number",
    }
)


class Accounts:
    """Create, find, list and change accounts."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def create(
        self,
        name: str,
        *,
        product_line: str,
        tier: str,
        last_purchase_on: date,
        sms_addon: bool = False,
        **settings: Any,
    ) -> Account:
        """A new account with an empty credit balance; settings as in `update_settings`."""
        name = _name(name)
        if self.find(name) is not None:
            raise Conflict(f"an account named {name!r} already exists")
        account = Account(
            name=name,
            product_line=_choice("product line", product_line, PRODUCT_LINES),
            tier=_choice("tier", tier, TIERS),
            last_purchase_on=last_purchase_on,
            sms_addon=bool(sms_addon),
            optout_clause=DEFAULT_OPTOUT_CLAUSE,
            optout_language="en",
            help_text=default_help_text(name),
            max_segments=1,
            quiet_start=DEFAULT_QUIET_START,
            quiet_end=DEFAULT_QUIET_END,
            frequency_cap=DEFAULT_FREQUENCY_CAP,
            credit_rates={"default": 1},
        )
        _apply_settings(account, settings)
        self._session.add(account)
        try:
            self._session.flush()
        except IntegrityError:
            raise Conflict(f"an account named {name!r} already exists") from None
        self._session.add(CreditBalance(account_id=account.id, free=0, purchased=0, reserved=0))
        self._session.flush()
        return account

    def get(self, account_id: int) -> Account:
        account = self._session.get(Account, account_id) if is_id(account_id) else None
        if account is None:
            raise NotFound(f"no account with id {account_id}")
        return account

    def find(self, name: str) -> Account | None:
        return self._session.scalars(select(Account).where(Account.name == name)).first()

    def resolve(self, ref: str) -> Account:
        """An account by name, or by id when `ref` is a number that is not a name."""
        account = self.find(ref.strip())
        number = parse_id(ref)
        if account is None and number is not None:
            account = self._session.get(Account, number)
        if account is None:
            raise NotFound(f"no account named {ref!r}")
        return account

    def list(self) -> list[Account]:
        return list(self._session.scalars(select(Account).order_by(Account.id)))

    def change_plan(
        self,
        account_id: int,
        *,
        tier: str | None = None,
        sms_addon: bool | None = None,
        last_purchase_on: date | None = None,
    ) -> Account:
        """Record a purchase or upgrade: the tier, the add-on and the purchase date (R2)."""
        account = self.get(account_id)
        if tier is not None:
            account.tier = _choice("tier", tier, TIERS)
        if sms_addon is not None:
            account.sms_addon = sms_addon
        if last_purchase_on is not None:
            account.last_purchase_on = last_purchase_on
        self._session.flush()
        return account

    def update_settings(self, account_id: int, **settings: Any) -> Account:
        """Change sending settings; names as in `SETTING_NAMES`."""
        account = self.get(account_id)
        _apply_settings(account, settings)
        self._session.flush()
        return account

    def update(self, account_id: int, **changes: Any) -> Account:
        """Change the plan (`PLAN_NAMES`) and settings (`SETTING_NAMES`) at once: every
        value is checked before any is set, so a bad one changes nothing."""
        account = self.get(account_id)
        plan = {k: check_change(k, v) for k, v in changes.items() if k in PLAN_NAMES}
        _apply_settings(account, {k: v for k, v in changes.items() if k not in PLAN_NAMES})
        for key, value in plan.items():
            setattr(account, key, value)
        self._session.flush()
        return account


def check_change(name: str, value: Any) -> Any:
    """`value` checked (and normalized) for the plan field or setting `name`."""
    check = _PLAN_CHECKS.get(name) or _CHECKS.get(name)
    if check is None:
        raise InvalidInput(f"unknown account setting {name!r}")
    return check(value)


def _apply_settings(account: Account, settings: Mapping[str, Any]) -> None:
    unknown = sorted(set(settings) - SETTING_NAMES)
    if unknown:
        raise InvalidInput(f"unknown account setting {unknown[0]!r}")
    checked = {k: _CHECKS[k](v) for k, v in settings.items() if v is not None}
    start = checked.get("quiet_start", account.quiet_start)
    end = checked.get("quiet_end", account.quiet_end)
    if not 0 <= start < end <= 1440:
        raise InvalidInput(
            f"sending window {format_window(start, end)} must start before it ends, within one day"
        )
    for key, value in checked.items():
        setattr(account, key, value)


def _name(raw: str) -> str:
    name = raw.strip()
    if not name or len(name) > 100 or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"account name {raw!r} must be 1-100 printable characters")
    return name


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> str:
    normalized = value.strip().lower()
    if normalized not in allowed:
        raise InvalidInput(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return normalized


def _text(what: str, limit: int) -> Any:
    def check(value: Any) -> str:
        text = str(value).strip()
        if not text or len(text) > limit:
            raise InvalidInput(f"{what} must be 1-{limit} characters")
        return text

    return check


def _int_between(what: str, low: int, high: int) -> Any:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(f"{what} must be a whole number from {low} to {high}, not {value!r}")
        return value

    return check


def _instructing(what: str, limit: int) -> Any:
    """A text sent to contacts that must tell them how to opt out (R11; carriers require
    the HELP answer to say it too): the rule core's clause detection decides."""
    length = _text(what, limit)

    def check(value: Any) -> str:
        text: str = length(value)
        problem = clause_problem(text, what)
        if problem is not None:
            raise InvalidInput(problem, code="invalid_optout_clause")
        return text

    return check


def _language(value: Any) -> str:
    text = str(value).strip()
    if not _LANGUAGE.match(text):
        raise InvalidInput(f"opt-out language {value!r} must be a language code such as en or fr")
    return text


def _sender(value: Any) -> str:
    check = check_phone(str(value))
    if check.e164 is None:
        raise InvalidInput(f"sender number {value!r} is not a valid SMS-capable number")
    return check.e164


def _rates(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping) or "default" not in value:
        raise InvalidInput('credit rates need a "default" rate, e.g. {"default": 1}')
    rates: dict[str, int] = {}
    for region, rate in value.items():
        if region != "default" and not _REGION.match(str(region)):
            raise InvalidInput(f"credit rate region {region!r} must be a code such as GB")
        rates[str(region)] = _int_between(f"credit rate for {region}", 1, MAX_RATE)(rate)
    return rates


_CHECKS: dict[str, Any] = {
    "optout_clause": _instructing("opt-out clause", 160),
    "optout_clause_policy": lambda v: _choice("clause policy", str(v), OPTOUT_CLAUSE_POLICIES),
    "optout_language": _language,
    "help_text": _instructing("help text", 320),
    "max_segments": _int_between("max segments per message", 1, 10),
    "quiet_start": _int_between("sending window start (minutes)", 0, 1439),
    "quiet_end": _int_between("sending window end (minutes)", 1, 1440),
    "frequency_cap": _int_between("frequency cap per 24 h", 1, 100),
    "credit_rates": _rates,
    "sender_number": _sender,
}


def _purchase_date(value: Any) -> date:
    if not isinstance(value, date):
        raise InvalidInput(f"purchase date {value!r} must be a date")
    return value


def _flag(what: str) -> Any:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidInput(f"{what} must be yes or no, not {value!r}")
        return value

    return check


_PLAN_CHECKS: dict[str, Any] = {
    "product_line": lambda value: _choice("product line", str(value), PRODUCT_LINES),
    "tier": lambda value: _choice("tier", str(value), TIERS),
    "sms_addon": _flag("SMS add-on"),
    "last_purchase_on": _purchase_date,
}
PLAN_NAMES = frozenset(_PLAN_CHECKS)


def parse_window(text: str) -> tuple[int, int]:
    """'08:00-21:00' -> (480, 1260): the local sending window in minutes."""
    match = _WINDOW.match(text.strip())
    if not match:
        raise InvalidInput(f"sending window {text!r} must look like 08:00-21:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
        raise InvalidInput(f"sending window {text!r} has an impossible time")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if not 0 <= start < end <= 1440:
        raise InvalidInput(f"sending window {text!r} must start before it ends, within one day")
    return start, end


def parse_time(text: str, what: str = "time") -> int:
    """'08:30' -> 510: minutes after local midnight (24:00 is the end of the day)."""
    match = _TIME.match(text.strip())
    if not match:
        raise InvalidInput(f"{what} {text!r} must look like 08:00")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours * 60 + minutes > 1440:
        raise InvalidInput(f"{what} {text!r} is not a time of day")
    return hours * 60 + minutes


def format_window(start: int, end: int) -> str:
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def parse_rates(items: list[str]) -> dict[str, int]:
    """['default=1', 'GB=2'] -> {'default': 1, 'GB': 2}; 'default' is 1 unless given."""
    rates: dict[str, Any] = {"default": 1}
    for item in items:
        region, sep, rate = item.partition("=")
        if not sep or not rate.strip().isdigit():
            raise InvalidInput(f"credit rate {item!r} must look like GB=2 or default=1")
        key = region.strip() if region.strip() == "default" else region.strip().upper()
        rates[key] = int(rate)
    return _rates(rates)
