"""`GET /api/v1/account` and `PATCH /api/v1/account`: the key's account and its settings.

A change goes through `services.accounts.parse_changes` (the table the CLI's
`accounts update` is built from) and `update_account`: every value is checked before
anything is written, so a change that is partly invalid writes nothing, and the 422
names the (first) field at fault. An account's key changes its sending settings only:
its plan, cohort and credit rates are what it pays for, changed by the operator
(`PATCH /admin/accounts/{id}`).
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.v1.auth import Authenticator
from sendline.services.accounts import (
    AccountView,
    account_settings,
    parse_changes,
    update_account,
)
from sendline.store.accounts import MAX_RATE
from sendline.store.credit_values import Balance

# Text a user gives that is stored: no NUL (PostgreSQL refuses it in text, which would
# be a 500) and no other control character but tab and line ends.
PLAIN_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def text_field(max_length: int, description: str, *, min_length: int = 0) -> Any:
    """An optional text field, bounded and free of control characters."""
    return Field(
        default=None,
        min_length=min_length,
        max_length=max_length,
        pattern=PLAIN_TEXT,
        description=description,
    )


class BalanceOut(BaseModel):
    """Credits: `available` = `free` + `purchased`; `reserved` are held for messages
    queued and not yet settled."""

    free: int
    purchased: int
    reserved: int
    available: int


def balance_out(balance: Balance) -> BalanceOut:
    return BalanceOut(
        free=balance.free,
        purchased=balance.purchased,
        reserved=balance.reserved,
        available=balance.available,
    )


class AccountOut(BaseModel):
    """An account's plan and sending settings, as `sendline accounts show` lists them."""

    id: int
    name: str
    product_line: str
    tier: str
    last_purchase_on: date
    cohort: str
    sms_addon: bool
    sms_state: str
    monthly_free_credits: int
    credits: BalanceOut
    quiet_hours: str  # the contact's local sending window, e.g. 08:00-21:00
    frequency_cap: int
    max_segments: int
    optout_clause: str
    optout_language: str
    optout_clause_policy: str
    help_text: str
    credit_rates: dict[str, int]
    sender_number: str | None


class AccountSettingsIn(BaseModel):
    """Sending settings to change; a field left out (or null) stays as it is."""

    model_config = ConfigDict(extra="forbid")

    quiet_hours: str | None = text_field(20, "Local sending window, e.g. 08:00-21:00.")
    quiet_start: str | None = text_field(10, "Sending window start, e.g. 08:00.")
    quiet_end: str | None = text_field(10, "Sending window end, e.g. 21:00.")
    frequency_cap: int | None = Field(default=None, ge=1, le=100, description="Texts per 24 h.")
    max_segments: int | None = Field(default=None, ge=1, le=10, description="Per message.")
    optout_clause: str | None = text_field(160, "Opt-out clause (must say how to opt out).")
    optout_language: str | None = text_field(16, "The clause's language: en, fr...")
    optout_clause_policy: str | None = text_field(20, "every_message or every_30_days.")
    help_text: str | None = text_field(320, "Reply to HELP (must say how to opt out).")
    sender_number: str | None = text_field(20, "The from-number, E.164.")

    def changes(self) -> dict[str, Any]:
        """The account columns, every value checked (InvalidInput naming the field)."""
        return parse_changes(self.model_dump(exclude_none=True), by_key=True)


class AccountChangeIn(AccountSettingsIn):
    """The operator's change: the sending settings and the plan."""

    product_line: str | None = text_field(20, "marketing or sales.")
    tier: str | None = text_field(20, "lite, starter, plus, professional or enterprise.")
    sms_addon: bool | None = Field(default=None, description="Bought the SMS add-on (R1, R2).")
    last_purchase_on: date | None = Field(
        default=None, description="Date of the last purchase or upgrade (the cohort)."
    )
    credit_rates: (
        dict[Annotated[str, Field(max_length=7)], Annotated[int, Field(ge=1, le=MAX_RATE)]] | None
    ) = Field(default=None, max_length=300, description='Credits per segment: {"default": 1}.')


def account_out(view: AccountView) -> AccountOut:
    return AccountOut(
        id=view.id,
        name=view.name,
        product_line=view.product_line,
        tier=view.tier,
        last_purchase_on=view.last_purchase_on,
        cohort=view.cohort,
        sms_addon=view.sms_addon,
        sms_state=view.sms_state,
        monthly_free_credits=view.monthly_free_credits,
        credits=balance_out(view.balance),
        quiet_hours=view.window,
        frequency_cap=view.frequency_cap,
        max_segments=view.max_segments,
        optout_clause=view.optout_clause,
        optout_language=view.optout_language,
        optout_clause_policy=view.optout_clause_policy,
        help_text=view.help_text,
        credit_rates=view.credit_rates,
        sender_number=view.sender_number,
    )


def router(sessions: sessionmaker[Session], auth: Authenticator) -> APIRouter:
    routes = APIRouter(tags=["account"])

    @routes.get("/account", response_model=AccountOut)
    def get_account(account_id: Annotated[int, Depends(auth.account_id)]) -> AccountOut:
        """The settings of the account the API key belongs to."""
        return account_out(account_settings(sessions, account_id))

    @routes.patch("/account", response_model=AccountOut)
    def patch_account(
        change: AccountSettingsIn, account_id: Annotated[int, Depends(auth.account_id)]
    ) -> AccountOut:
        """Change the account's sending settings (quiet hours, frequency cap, opt-out
        clause, its language and policy, HELP text, max segments, sender), as `sendline
        accounts update` does. Every value is checked first: one bad value (the 422
        names it) changes nothing."""
        return account_out(update_account(sessions, account_id, change.changes()))

    return routes
