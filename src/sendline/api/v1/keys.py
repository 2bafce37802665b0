"""`/api/v1/keys`: the account's API keys, listed and revoked with one of its own keys.

Making a key stays with the operator (`sendline keys create`, or the admin route): a
key that could mint keys would outlive its own revocation. A key may revoke any key of
its account, itself included (its next request is a 401), never another account's
(404, as one that does not exist).
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.v1.auth import Authenticator
from sendline.api.v1.pages import Cursor, Limit, Page, before_id, page_of
from sendline.api.v1.params import ObjectId
from sendline.services.api_keys import ApiKeyView, key_page, revoke_account_key


class KeyViewOut(BaseModel):
    """A key as it is kept: its prefix (`sl_live_AbCd`), never the key itself."""

    id: int
    account_id: int | None
    kind: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None  # updated at most once a minute
    revoked_at: datetime | None


def key_out(view: ApiKeyView) -> KeyViewOut:
    return KeyViewOut(
        id=view.id,
        account_id=view.account_id,
        kind=view.kind,
        name=view.name,
        prefix=view.prefix,
        created_at=view.created_at,
        last_used_at=view.last_used_at,
        revoked_at=view.revoked_at,
    )


def router(sessions: sessionmaker[Session], auth: Authenticator) -> APIRouter:
    routes = APIRouter(tags=["keys"])
    Account = Annotated[int, Depends(auth.account_id)]

    @routes.get("/keys", response_model=Page[KeyViewOut])
    def list_keys(
        account_id: Account, limit: Limit = 50, cursor: Cursor = None
    ) -> Page[KeyViewOut]:
        """The account's keys, revoked ones included, newest first (`sendline keys list`)."""
        views = key_page(sessions, account_id, limit=limit + 1, before_id=before_id(cursor))
        return page_of(views, limit, key_out, lambda view: view.id)

    @routes.delete("/keys/{key_id}", response_model=KeyViewOut)
    def revoke_key(key_id: ObjectId, account_id: Account) -> KeyViewOut:
        """Revoke one of the account's keys at once (`sendline keys revoke`)."""
        return key_out(revoke_account_key(sessions, account_id, key_id))

    return routes
