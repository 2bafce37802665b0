"""`GET /api/v1/account`: the settings of the key's account."""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.v1.auth import Authenticator
from sendline.services.accounts import AccountView, account_settings


class Credits(BaseModel):
    free: int
    purchased: int
    reserved: int
    available: int


class AccountOut(BaseModel):
    """An account's plan and sending settings, as `sendline accounts show` lists them."""

    id: int
    name: str
    product_line: str
    tier: str
    cohort: str
    sms_addon: bool
    sms_state: str
    monthly_free_credits: int
    credits: Credits
    quiet_hours: str  # the contact's local sending window, e.g. 08:00-21:00
    frequency_cap: int
    max_segments: int
    optout_clause: str
    optout_language: str
    optout_clause_policy: str
    help_text: str
    credit_rates: dict[str, int]
    sender_number: str | None


def account_out(view: AccountView) -> AccountOut:
    balance = view.balance
    return AccountOut(
        id=view.id,
        name=view.name,
        product_line=view.product_line,
        tier=view.tier,
        cohort=view.cohort,
        sms_addon=view.sms_addon,
        sms_state=view.sms_state,
        monthly_free_credits=view.monthly_free_credits,
        credits=Credits(
            free=balance.free,
            purchased=balance.purchased,
            reserved=balance.reserved,
            available=balance.available,
        ),
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

    return routes
