"""Tags and lists: the account's (with counts), and a contact's (tag, untag, subscribe,
unsubscribe). Changes go through `services.contacts.tag|untag|subscribe|unsubscribe`,
as `sendline contacts tag ...` does, so `tag_added` and `list_subscribed` automations
start exactly as from the CLI.

Tags have no id: `GET /tags` pages by name (A to Z), with a cursor of its own kind.
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
import base64
import binascii
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.v1.auth import Authenticator
from sendline.api.v1.contact_models import ContactChangeOut, change_out
from sendline.api.v1.pages import Cursor, Limit, Page, before_id, page_of
from sendline.api.v1.params import ObjectId
from sendline.api.v1.strings import NO_NUL
from sendline.errors import InvalidInput
from sendline.services import contacts as service
from sendline.services.contact_queries import ListCount, TagCount, list_counts, tag_counts
from sendline.store.contact_values import MAX_NAME, MAX_TAG

_TAG_CURSOR = "t1:"
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG, pattern=NO_NUL)]
TagPath = Annotated[
    str, Path(min_length=1, max_length=MAX_TAG, description="The tag.", pattern=NO_NUL)
]
ListPath = Annotated[
    str, Path(min_length=1, max_length=MAX_NAME, description="The list.", pattern=NO_NUL)
]


class TagOut(BaseModel):
    tag: str
    contacts: int  # contacts with the tag


class ListOut(BaseModel):
    id: int
    name: str
    members: int  # contacts on the list
    created_at: datetime


class TagsIn(BaseModel):
    """Tags to add (each 1-64 characters, without ';')."""

    tags: list[Tag] = Field(min_length=1, max_length=100)


class SubscribeIn(BaseModel):
    """The list to subscribe to (created if new)."""

    list: str = Field(min_length=1, max_length=MAX_NAME, pattern=NO_NUL)


def tag_cursor(tag: str) -> str:
    return base64.urlsafe_b64encode(f"{_TAG_CURSOR}{tag}".encode()).decode().rstrip("=")


def after_tag(cursor: str | None) -> str | None:
    """The tag a page of tags starts after; a cursor the server did not make is a 422."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii"))
        decoded = text.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        decoded = ""
    if not decoded.startswith(_TAG_CURSOR) or "\x00" in decoded:
        raise InvalidInput("cursor is not one this server gave out", field="cursor")
    return decoded.removeprefix(_TAG_CURSOR)


def router(sessions: sessionmaker[Session], auth: Authenticator) -> APIRouter:
    routes = APIRouter(tags=["tags and lists"])
    Account = Annotated[int, Depends(auth.account_id)]

    @routes.get("/tags", response_model=Page[TagOut])
    def get_tags(account_id: Account, limit: Limit = 50, cursor: Cursor = None) -> Page[TagOut]:
        """The account's tags, A to Z, each with how many contacts have it."""
        rows = tag_counts(sessions, account_id, after=after_tag(cursor), limit=limit)
        shown = rows[:limit]
        more = len(rows) > limit and bool(shown)
        return Page[TagOut](
            data=[_tag_out(row) for row in shown],
            next_cursor=tag_cursor(shown[-1].tag) if more else None,
        )

    @routes.get("/lists", response_model=Page[ListOut])
    def get_lists(account_id: Account, limit: Limit = 50, cursor: Cursor = None) -> Page[ListOut]:
        """The account's lists, newest first, each with its member count."""
        rows = list_counts(sessions, account_id, before=before_id(cursor), limit=limit)
        return page_of(rows, limit, _list_out, lambda r: r.id)

    @routes.post("/contacts/{contact_id}/tags", response_model=ContactChangeOut)
    def add_tags(contact_id: ObjectId, body: TagsIn, account_id: Account) -> ContactChangeOut:
        """Tag a contact; `tag_added` automations start for each tag it did not have."""
        return change_out(service.tag(sessions, account_id, contact_id, body.tags))

    @routes.delete("/contacts/{contact_id}/tags/{tag}", response_model=ContactChangeOut)
    def remove_tag(contact_id: ObjectId, tag: TagPath, account_id: Account) -> ContactChangeOut:
        """Remove a tag from a contact (`changed` is false if it did not have it)."""
        return change_out(service.untag(sessions, account_id, contact_id, [tag]))

    @routes.post("/contacts/{contact_id}/lists", response_model=ContactChangeOut)
    def subscribe(contact_id: ObjectId, body: SubscribeIn, account_id: Account) -> ContactChangeOut:
        """Subscribe a contact to a list (created if new); `list_subscribed`
        automations start. SMS consent is separate: see `POST .../consent`."""
        return change_out(service.subscribe(sessions, account_id, contact_id, body.list))

    @routes.delete("/contacts/{contact_id}/lists/{name}", response_model=ContactChangeOut)
    def unsubscribe(contact_id: ObjectId, name: ListPath, account_id: Account) -> ContactChangeOut:
        """Take a contact off a list (an unknown list is 404); SMS consent is unchanged."""
        return change_out(service.unsubscribe(sessions, account_id, contact_id, name))

    return routes


def _tag_out(row: TagCount) -> TagOut:
    return TagOut(tag=row.tag, contacts=row.contacts)


def _list_out(row: ListCount) -> ListOut:
    return ListOut(id=row.id, name=row.name, members=row.members, created_at=row.created_at)
