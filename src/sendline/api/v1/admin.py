"""`/api/v1/admin`: the operator's routes, for an admin key only (an account's key is
403 `admin_key_required`): create and list accounts, change an account's plan, and
create an account's API key (shown once).

Admin keys are made with `sendline keys create --admin`; they belong to no account, so
they reach every account here and none on the account routes.
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.shown_once import shown_once
from sendline.api.v1.account import PLAIN_TEXT, AccountChangeIn, AccountOut, account_out
from sendline.api.v1.auth import Authenticator
from sendline.api.v1.keys import KeyViewOut, key_out
from sendline.api.v1.pages import Cursor, Limit, Page, before_id, page_of
from sendline.api.v1.params import ObjectId
from sendline.services.accounts import (
    account_page,
    create_account,
    parse_changes,
    update_account,
)
from sendline.services.api_keys import MAX_NAME, Caller, create_key, key_page, revoke_account_key

PLAN = {"product_line", "tier", "sms_addon", "last_purchase_on"}


class AccountCreateIn(AccountChangeIn):
    """A new account: its name and plan (required) and any sending settings."""

    name: str = Field(min_length=1, max_length=100, pattern=PLAIN_TEXT)
    product_line: str = Field(max_length=20, description="marketing or sales.")
    tier: str = Field(max_length=20, description="lite, starter, plus, professional, enterprise.")
    last_purchase_on: date = Field(description="Date of the last purchase or upgrade.")
    sms_addon: bool = Field(default=False, description="Bought the SMS add-on (R1, R2).")


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_NAME, pattern=PLAIN_TEXT)


class KeyOut(BaseModel):
    """A new key. `key` is shown this once: store it now (only its hash is kept)."""

    id: int
    account_id: int
    kind: str
    name: str
    prefix: str
    created_at: datetime
    key: str


def router(sessions: sessionmaker[Session], auth: Authenticator) -> APIRouter:
    routes = APIRouter(prefix="/admin", tags=["admin"])
    Admin = Annotated[Caller, Depends(auth.admin_caller)]

    @routes.post("/accounts", status_code=201, response_model=AccountOut)
    def post_account(account: AccountCreateIn, _admin: Admin) -> AccountOut:
        """Create an account with an empty balance, as `sendline accounts create`.
        Every value is checked first (422 naming the field); a taken name is 409."""
        given = account.model_dump(exclude_none=True)
        plan = parse_changes({k: v for k, v in given.items() if k in PLAN}, by_key=True)
        settings = parse_changes(
            {k: v for k, v in given.items() if k not in PLAN | {"name"}}, by_key=True
        )
        view = create_account(
            sessions,
            account.name,
            product_line=plan["product_line"],
            tier=plan["tier"],
            purchased_on=plan["last_purchase_on"],
            sms_addon=plan["sms_addon"],
            settings=settings,
        )
        return account_out(view)

    @routes.get("/accounts", response_model=Page[AccountOut])
    def get_accounts(_admin: Admin, limit: Limit = 50, cursor: Cursor = None) -> Page[AccountOut]:
        """Every account, newest first."""
        views = account_page(sessions, limit=limit + 1, before_id=before_id(cursor))
        return page_of(views, limit, account_out, lambda view: view.id)

    @routes.patch("/accounts/{account_id}", response_model=AccountOut)
    def patch_account(account_id: ObjectId, change: AccountChangeIn, _admin: Admin) -> AccountOut:
        """Change an account's plan (line, tier, add-on, purchase date), credit rates
        and sending settings, as `sendline accounts update`: all or nothing."""
        return account_out(update_account(sessions, account_id, change.changes()))

    @routes.post("/accounts/{account_id}/keys", status_code=201, response_model=KeyOut)
    def post_key(account_id: ObjectId, key: KeyIn, _admin: Admin, response: Response) -> KeyOut:
        """Create an API key for the account, as `sendline keys create`. The full key
        is in this answer only."""
        shown_once(response)
        created = create_key(sessions, account_id, key.name)
        view = created.view
        assert view.account_id is not None  # an account's key, by construction
        return KeyOut(
            id=view.id,
            account_id=view.account_id,
            kind=view.kind,
            name=view.name,
            prefix=view.prefix,
            created_at=view.created_at,
            key=created.key,
        )

    @routes.get("/accounts/{account_id}/keys", response_model=Page[KeyViewOut])
    def get_keys(
        account_id: ObjectId, _admin: Admin, limit: Limit = 50, cursor: Cursor = None
    ) -> Page[KeyViewOut]:
        """An account's keys, revoked ones included, newest first."""
        views = key_page(sessions, account_id, limit=limit + 1, before_id=before_id(cursor))
        return page_of(views, limit, key_out, lambda view: view.id)

    @routes.delete("/keys/{key_id}", response_model=KeyViewOut)
    def delete_key(key_id: ObjectId, _admin: Admin) -> KeyViewOut:
        """Revoke any key at once, an admin key included (`sendline keys revoke`)."""
        return key_out(revoke_account_key(sessions, None, key_id))

    return routes
