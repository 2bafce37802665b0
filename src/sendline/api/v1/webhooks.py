"""`/api/v1/webhooks`: the account's outbound webhook endpoints and their delivery log.

The signing secret is in the answer of `POST /webhooks` and of `rotate-secret` only;
no other route returns it. Another account's endpoint is 404 on every route.
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.shown_once import shown_once
from sendline.api.v1.auth import Authenticator
from sendline.api.v1.pages import Cursor, Limit, Page, before_id, page_of
from sendline.api.v1.params import ObjectId
from sendline.config import Settings
from sendline.services import webhooks
from sendline.store.webhook_models import MAX_URL

EventKind = Literal[
    "message.status", "message.held", "contact.opted_out", "contact.opted_in", "inbound.received"
]
Url = Annotated[str, Field(min_length=1, max_length=MAX_URL)]
Kinds = Annotated[list[EventKind], Field(min_length=1, max_length=10)]


class WebhookIn(BaseModel):
    """Where to POST (https://) and which event kinds."""

    url: Url
    events: Kinds


class WebhookPatch(BaseModel):
    """What to change; `enabled: true` re-enables a disabled endpoint, which resumes
    from its cursor (the events it missed are delivered, in order)."""

    url: Url | None = None
    events: Kinds | None = None
    enabled: bool | None = None


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    cursor: int  # the id of the last event delivered
    attempts: int  # failures in a row of the head event
    failing_since: datetime | None
    next_attempt_at: datetime | None
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    """The endpoint and its signing secret, shown this once."""

    secret: str


class DeliveryOut(BaseModel):
    id: int
    event_id: int
    event_kind: str
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    delivered: bool
    at: datetime
    next_attempt_at: datetime | None


def webhook_out(view: webhooks.WebhookView) -> WebhookOut:
    return WebhookOut(
        id=view.id,
        url=view.url,
        events=list(view.events),
        enabled=view.enabled,
        disabled_reason=view.disabled_reason,
        cursor=view.cursor,
        attempts=view.attempts,
        failing_since=view.failing_since,
        next_attempt_at=view.next_attempt_at,
        created_at=view.created_at,
    )


def created_out(created: webhooks.CreatedWebhook) -> WebhookCreatedOut:
    return WebhookCreatedOut(**webhook_out(created.view).model_dump(), secret=created.secret)


def delivery_out(view: webhooks.DeliveryView) -> DeliveryOut:
    return DeliveryOut(
        id=view.id,
        event_id=view.event_id,
        event_kind=view.event_kind,
        attempt=view.attempt,
        status_code=view.status_code,
        error=view.error,
        duration_ms=view.duration_ms,
        delivered=view.delivered,
        at=view.at,
        next_attempt_at=view.next_attempt_at,
    )


def router(sessions: sessionmaker[Session], auth: Authenticator, settings: Settings) -> APIRouter:
    routes = APIRouter(tags=["webhooks"])
    Account = Annotated[int, Depends(auth.account_id)]

    @routes.post("/webhooks", status_code=201, response_model=WebhookCreatedOut)
    def create_webhook(
        body: WebhookIn, account_id: Account, response: Response
    ) -> WebhookCreatedOut:
        """Register an endpoint. The answer holds its signing secret (`whsec_...`):
        store it now, it is never shown again. It hears events from now on."""
        shown_once(response)
        created = webhooks.create_webhook(sessions, settings, account_id, body.url, body.events)
        return created_out(created)

    @routes.get("/webhooks", response_model=Page[WebhookOut])
    def list_webhooks(
        account_id: Account, limit: Limit = 50, cursor: Cursor = None
    ) -> Page[WebhookOut]:
        """The account's endpoints, newest first."""
        rows = webhooks.list_webhooks(
            sessions, account_id, before_id=before_id(cursor), limit=limit + 1
        )
        return page_of(rows, limit, webhook_out, lambda view: view.id)

    @routes.get("/webhooks/{webhook_id}", response_model=WebhookOut)
    def get_webhook(webhook_id: ObjectId, account_id: Account) -> WebhookOut:
        """One endpoint: its state, why it was disabled, its cursor, since when it fails."""
        return webhook_out(webhooks.get_webhook(sessions, account_id, webhook_id))

    @routes.patch("/webhooks/{webhook_id}", response_model=WebhookOut)
    def update_webhook(webhook_id: ObjectId, body: WebhookPatch, account_id: Account) -> WebhookOut:
        """Change the URL or the event kinds; disable or re-enable the endpoint."""
        view = webhooks.update_webhook(
            sessions,
            settings,
            account_id,
            webhook_id,
            url=body.url,
            events=body.events,
            enabled=body.enabled,
        )
        return webhook_out(view)

    @routes.delete("/webhooks/{webhook_id}", response_model=WebhookOut)
    def delete_webhook(webhook_id: ObjectId, account_id: Account) -> WebhookOut:
        """Delete the endpoint and its delivery log; returns what was deleted."""
        return webhook_out(webhooks.delete_webhook(sessions, account_id, webhook_id))

    @routes.post("/webhooks/{webhook_id}/rotate-secret", response_model=WebhookCreatedOut)
    def rotate_secret(
        webhook_id: ObjectId, account_id: Account, response: Response
    ) -> WebhookCreatedOut:
        """A new signing secret, shown once; deliveries are signed with it from now on
        and the old one stops working at once."""
        shown_once(response)
        return created_out(webhooks.rotate_secret(sessions, settings, account_id, webhook_id))

    @routes.get("/webhooks/{webhook_id}/deliveries", response_model=Page[DeliveryOut])
    def list_deliveries(
        webhook_id: ObjectId, account_id: Account, limit: Limit = 50, cursor: Cursor = None
    ) -> Page[DeliveryOut]:
        """The endpoint's delivery log, newest first: every attempt and its answer."""
        rows = webhooks.list_deliveries(
            sessions, account_id, webhook_id, before_id=before_id(cursor), limit=limit + 1
        )
        return page_of(rows, limit, delivery_out, lambda view: view.id)

    return routes
