"""`POST /api/v1/events`: a custom event for a contact; automations listening start.

The contact is named by id or email and looked up in the key's account only: another
account's contact is 404, like one that does not exist.
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.v1.auth import Authenticator
from sendline.services.automations import send_account_event
from sendline.store.ids import MAX_ID

EVENT_NAME = r"^[A-Za-z0-9_.:-]+$"
EMAIL = r"^[^@\s]+@[^@\s]+$"


class EventIn(BaseModel):
    """The event: its name, the contact (exactly one of `contact_id` and `email`) and
    a JSON object automations can read."""

    name: str = Field(min_length=1, max_length=100, pattern=EVENT_NAME)
    contact_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL)
    payload: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def one_contact(self) -> Self:
        if (self.contact_id is None) == (self.email is None):
            raise ValueError("give exactly one of contact_id and email")
        return self

    def contact_ref(self) -> str:
        if self.contact_id is not None:
            return str(self.contact_id)
        assert self.email is not None
        return self.email


class EventOut(BaseModel):
    name: str
    contact_id: int
    started: int  # automation runs the event started
    reasons: list[str]  # why none started, when `started` is 0


def router(sessions: sessionmaker[Session], auth: Authenticator) -> APIRouter:
    routes = APIRouter(tags=["events"])

    @routes.post("/events", status_code=202, response_model=EventOut)
    def post_event(
        event: EventIn, account_id: Annotated[int, Depends(auth.account_id)]
    ) -> EventOut:
        """Record a custom event (`order_shipped`...) for one of the account's contacts."""
        outcome = send_account_event(
            sessions, account_id, event.contact_ref(), event.name, event.payload
        )
        return EventOut(
            name=outcome.name,
            contact_id=outcome.contact_id,
            started=outcome.started,
            reasons=list(outcome.reasons),
        )

    return routes
