"""`/api/v1/messages`: list and filter, one with its status history, cancel a queued
one, release held ones, and a test send to one consenting contact.

Everything is scoped to the key's account: another account's message is 404, by id, in
lists, and in a release (which then changes nothing).
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
from datetime import UTC, datetime
from typing import Annotated, Self

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, JsonValue, model_validator
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.v1.auth import Authenticator
from sendline.api.v1.pages import Cursor, Limit, Page, before_id, page_of
from sendline.api.v1.params import ObjectId
from sendline.engine.pipeline import HOLD_REASONS
from sendline.errors import InvalidInput
from sendline.services.messages import (
    MAX_RELEASE,
    MessageFilter,
    MessageLine,
    Released,
    StatusChange,
    cancel,
    get_message,
    message_page,
    release_held,
    send_test,
)
from sendline.services.providers import TEST_BODY
from sendline.sms.links import ShortenerList
from sendline.store.engine_models import MESSAGE_STATUSES
from sendline.store.ids import MAX_ID

STATUS_ENUM: dict[str, JsonValue] = {"enum": list(MESSAGE_STATUSES)}
REASON_ENUM: dict[str, JsonValue] = {"enum": list(HOLD_REASONS)}
AnId = Annotated[int, Field(ge=1, le=MAX_ID)]
Reason = Annotated[
    str, Field(max_length=32, description="A hold reason.", json_schema_extra=REASON_ENUM)
]


class MessageOut(BaseModel):
    """An outbound SMS: its status (R16), why it is held or why it waits."""

    id: int
    created_at: datetime
    to: str | None
    contact_id: int | None
    automation_id: int | None
    step_id: str | None
    kind: str  # marketing, or reply (opt-out confirmations, help texts)
    transactional: bool
    status: str
    held_reason: str | None
    detail: str | None
    waiting: str | None  # why a queued one has not gone yet: quiet hours, rate limit...
    body: str | None
    segments: int
    credits: int
    due_at: datetime | None
    provider: str | None
    error_code: str | None
    sent_at: datetime | None
    delivered_at: datetime | None


class StatusChangeOut(BaseModel):
    id: int
    at: datetime
    status: str | None
    reason: str | None
    detail: str | None
    error_code: str | None


class MessageDetailOut(MessageOut):
    """A message with its status history, oldest first."""

    history: list[StatusChangeOut]


class ReleaseIn(BaseModel):
    """The held messages to release: by id, or every one held for a reason (the oldest
    10,000 at a time). Exactly one of the two."""

    ids: list[AnId] | None = Field(default=None, min_length=1, max_length=MAX_RELEASE)
    reason: Reason | None = None

    @model_validator(mode="after")
    def one_way(self) -> Self:
        if (self.ids is None) == (self.reason is None):
            raise ValueError("give exactly one of ids and reason")
        return self


class ReleasedOut(BaseModel):
    message_id: int
    status: str  # queued, or held again
    reason: str | None  # today's hold reason when still held
    detail: str | None
    due_at: datetime | None


class ReleaseOut(BaseModel):
    data: list[ReleasedOut]
    queued: int
    still_held: int


class TestSendIn(BaseModel):
    """A test message to one consenting contact, named by id or by phone (not both)."""

    contact_id: AnId | None = None
    phone: str | None = Field(default=None, min_length=1, max_length=32)
    body: str = Field(default=TEST_BODY, min_length=1, max_length=1600)

    @model_validator(mode="after")
    def one_contact(self) -> Self:
        if (self.contact_id is None) == (self.phone is None):
            raise ValueError("give exactly one of contact_id and phone")
        return self


def message_out(line: MessageLine) -> MessageOut:
    return MessageOut.model_validate(_fields(line))


def _fields(line: MessageLine) -> dict[str, object]:
    return {name: getattr(line, name) for name in MessageOut.model_fields}


def _change_out(change: StatusChange) -> StatusChangeOut:
    return StatusChangeOut(
        id=change.id,
        at=change.at,
        status=change.status,
        reason=change.reason,
        detail=change.detail,
        error_code=change.error_code,
    )


def _released_out(item: Released) -> ReleasedOut:
    return ReleasedOut(
        message_id=item.message_id,
        status=item.status,
        reason=item.reason,
        detail=item.detail,
        due_at=item.due_at,
    )


def _utc(value: datetime | None, field: str) -> datetime | None:
    """A filter's time in UTC; one without a zone is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{field} is out of range", field=field) from None


StatusQuery = Annotated[
    Annotated[str, Field(max_length=12, json_schema_extra=STATUS_ENUM)] | None,
    Query(description="Only this status."),
]
ReasonQuery = Annotated[
    Annotated[str, Field(max_length=32, json_schema_extra=REASON_ENUM)] | None,
    Query(description="Only this hold reason."),
]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
TimeQuery = Annotated[datetime | None, Query(description="ISO 8601; UTC if no offset.")]


def router(
    sessions: sessionmaker[Session], auth: Authenticator, shorteners: ShortenerList
) -> APIRouter:
    """`shorteners`: R10's list as the worker sees it (the operator's file on top of
    the packaged one), so a release, a test send or a save checks links as a blast does."""
    routes = APIRouter(tags=["messages"])

    @routes.get("/messages", response_model=Page[MessageOut])
    def list_route(
        account_id: Annotated[int, Depends(auth.account_id)],
        status: StatusQuery = None,
        reason: ReasonQuery = None,
        automation_id: IdQuery = None,
        contact_id: IdQuery = None,
        created_after: TimeQuery = None,
        created_before: TimeQuery = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[MessageOut]:
        """The account's messages, newest first: each held one with its reason, each
        queued one with why it waits (`waiting`). `created_after` is inclusive,
        `created_before` exclusive."""
        where = MessageFilter(
            status=status,
            reason=reason,
            automation_id=automation_id,
            contact_id=contact_id,
            created_after=_utc(created_after, "created_after"),
            created_before=_utc(created_before, "created_before"),
            before_id=before_id(cursor),
        )
        lines = message_page(sessions, account_id, where, limit=limit + 1)
        return page_of(lines, limit, message_out, lambda line: line.id)

    @routes.get("/messages/{message_id}", response_model=MessageDetailOut)
    def get_route(
        message_id: ObjectId, account_id: Annotated[int, Depends(auth.account_id)]
    ) -> MessageDetailOut:
        """One message with its status history (oldest first)."""
        found = get_message(sessions, account_id, message_id)
        history = [_change_out(change) for change in found.history]
        return MessageDetailOut.model_validate(_fields(found.message) | {"history": history})

    @routes.post("/messages/{message_id}/cancel", response_model=MessageOut)
    def cancel_route(
        message_id: ObjectId, account_id: Annotated[int, Depends(auth.account_id)]
    ) -> MessageOut:
        """Cancel a queued or held message; the credits it reserved are released. One a
        worker already took (sending, sent, delivered...) is 409
        `message_not_cancelable`."""
        return message_out(cancel(sessions, account_id, message_id))

    @routes.post("/messages/release", response_model=ReleaseOut)
    def release_route(
        release: ReleaseIn, account_id: Annotated[int, Depends(auth.account_id)]
    ) -> ReleaseOut:
        """Run every send check again for held messages (by id, or all held for a
        reason): each is queued if they pass now, or stays held with today's reason.
        All or nothing: an id that is not a held message of the account is 404 and
        nothing is released."""
        results = release_held(
            sessions,
            account_id,
            ids=release.ids or (),
            reason=release.reason,
            shorteners=shorteners,
        )
        queued = sum(1 for item in results if item.status == "queued")
        return ReleaseOut(
            data=[_released_out(item) for item in results],
            queued=queued,
            still_held=len(results) - queued,
        )

    @routes.post("/messages/test", status_code=201, response_model=MessageOut)
    def test_route(
        test: TestSendIn, account_id: Annotated[int, Depends(auth.account_id)]
    ) -> MessageOut:
        """Queue one message to a consenting contact, through every send check (plan,
        consent, phone, body, opt-out clause, credits) but quiet hours and the
        frequency cap. A check that would hold it refuses it with the hold reason as
        the code (`no_consent`, `insufficient_credits`...) and nothing is stored."""
        line = send_test(
            sessions,
            account_id,
            body=test.body,
            contact_id=test.contact_id,
            phone=test.phone,
            shorteners=shorteners,
        )
        return message_out(line)

    return routes
