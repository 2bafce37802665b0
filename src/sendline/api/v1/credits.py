"""`/api/v1/credits`: the balance, the ledger (newest first, paginated) and purchases.

As `sendline credits show` and `credits purchase` (R3): purchased credits never expire,
and a current-cohort account needs the SMS add-on before it can buy any (403).
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.v1.account import PLAIN_TEXT, BalanceOut, balance_out
from sendline.api.v1.auth import Authenticator
from sendline.api.v1.pages import Cursor, Limit, Page, before_id, page_of
from sendline.services.credits import (
    LedgerLine,
    buy_credits,
    credit_statement,
    ledger_page,
)
from sendline.store.credits import MAX_PURCHASE


class LedgerLineOut(BaseModel):
    """One ledger entry: what happened and how it moved each part of the balance."""

    id: int
    created_at: datetime
    kind: str
    amount: int
    free_delta: int
    purchased_delta: int
    reserved_delta: int
    about: str  # the note, the message it settles, the reservation it belongs to


class PurchaseIn(BaseModel):
    credits: int = Field(ge=1, le=MAX_PURCHASE, description="Credits bought.")
    note: str | None = Field(
        default=None, max_length=200, pattern=PLAIN_TEXT, description="e.g. the invoice number."
    )


class PurchaseOut(BaseModel):
    """The purchase's ledger entry and the balance after it."""

    entry: LedgerLineOut
    balance: BalanceOut


def line_out(line: LedgerLine) -> LedgerLineOut:
    return LedgerLineOut(
        id=line.id,
        created_at=line.created_at,
        kind=line.kind,
        amount=line.amount,
        free_delta=line.free_delta,
        purchased_delta=line.purchased_delta,
        reserved_delta=line.reserved_delta,
        about=line.about,
    )


def router(sessions: sessionmaker[Session], auth: Authenticator) -> APIRouter:
    routes = APIRouter(tags=["credits"])

    @routes.get("/credits", response_model=BalanceOut)
    def get_balance(account_id: Annotated[int, Depends(auth.account_id)]) -> BalanceOut:
        """The account's credit balance."""
        return balance_out(credit_statement(sessions, account_id, entries=0).audit.balance)

    @routes.get("/credits/ledger", response_model=Page[LedgerLineOut])
    def get_ledger(
        account_id: Annotated[int, Depends(auth.account_id)],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[LedgerLineOut]:
        """The account's credit ledger, newest first: purchases, grants, reservations
        and their settlements."""
        lines = ledger_page(sessions, account_id, limit=limit + 1, before_id=before_id(cursor))
        return page_of(lines, limit, line_out, lambda line: line.id)

    @routes.post("/credits/purchases", status_code=201, response_model=PurchaseOut)
    def post_purchase(
        purchase: PurchaseIn, account_id: Annotated[int, Depends(auth.account_id)]
    ) -> PurchaseOut:
        """Record a purchase of credits, as `sendline credits purchase` does (they never
        expire). Refused with 403 when the plan has no SMS or lacks the add-on."""
        bought = buy_credits(sessions, account_id, purchase.credits, note=purchase.note)
        return PurchaseOut(entry=line_out(bought.line), balance=balance_out(bought.balance))

    return routes
