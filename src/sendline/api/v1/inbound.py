"""`/api/v1/inbound`: texts contacts sent, what each did, and the review queue (R12):
free-text revocations wait for a person's decision, opt out or not an opt-out.

Scoped to the key's account: another account's text is 404, by id and in lists.
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.v1.auth import Authenticator
from sendline.api.v1.pages import Cursor, Limit, Page, before_id, page_of
from sendline.api.v1.params import ObjectId
from sendline.masking import mask_phone
from sendline.services.inbox import InboundView, get_inbound, page_inbound, review_reply
from sendline.store.consent import MAX_RECORDER
from sendline.store.ids import MAX_ID


class InboundOut(BaseModel):
    """A text a contact sent, and what it did."""

    id: int
    received_at: datetime
    contact_id: int | None
    from_number: str
    to_number: str  # the account's number, masked
    body: str
    action: str  # as classified on arrival: opt_out, opt_in, help, review, none
    outcome: str  # in words
    awaiting_review: bool
    review_decision: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None


class ReviewIn(BaseModel):
    """A person's decision on a reply flagged for review, and who made it."""

    decision: Literal["opt_out", "not_opt_out"]
    by: str = Field(min_length=1, max_length=MAX_RECORDER)


class ReviewOut(BaseModel):
    reply: InboundOut
    consent_event_id: int | None  # the opt-out recorded, if the decision was one
    canceled: int  # pending messages to the contact that the opt-out canceled


def inbound_out(view: InboundView) -> InboundOut:
    return InboundOut(
        id=view.id,
        received_at=view.received_at,
        contact_id=view.contact_id,
        from_number=view.from_number,
        to_number=mask_phone(view.to_number),
        body=view.body,
        action=view.action,
        outcome=view.outcome,
        awaiting_review=view.awaiting_review,
        review_decision=view.review_decision,
        reviewed_by=view.reviewed_by,
        reviewed_at=view.reviewed_at,
    )


def router(sessions: sessionmaker[Session], auth: Authenticator) -> APIRouter:
    routes = APIRouter(tags=["inbound"])

    @routes.get("/inbound", response_model=Page[InboundOut])
    def list_route(
        account_id: Annotated[int, Depends(auth.account_id)],
        review: Annotated[
            bool | None,
            Query(description="true: only those awaiting review; false: only the others."),
        ] = None,
        contact_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[InboundOut]:
        """The account's inbound texts, newest first, with what each did."""
        views = page_inbound(
            sessions,
            account_id,
            limit=limit + 1,
            review=review,
            contact_id=contact_id,
            before_id=before_id(cursor),
        )
        return page_of(views, limit, inbound_out, lambda view: view.id)

    @routes.get("/inbound/{inbound_id}", response_model=InboundOut)
    def get_route(
        inbound_id: ObjectId, account_id: Annotated[int, Depends(auth.account_id)]
    ) -> InboundOut:
        """One inbound text and what it did."""
        return inbound_out(get_inbound(sessions, account_id, inbound_id))

    @routes.post("/inbound/{inbound_id}/review", response_model=ReviewOut)
    def review_route(
        inbound_id: ObjectId,
        decision: ReviewIn,
        account_id: Annotated[int, Depends(auth.account_id)],
    ) -> ReviewOut:
        """Decide a reply flagged for review, as `sendline inbox review`: `opt_out`
        records the opt-out (method agent, the reply as evidence, who decided) and
        cancels what is pending to the contact; `not_opt_out` only closes the review.
        A reply already reviewed is 409 `already_reviewed`; one never flagged is 422
        `not_for_review`."""
        result = review_reply(
            sessions,
            inbound_id,
            opt_out=decision.decision == "opt_out",
            by=decision.by,
            account=account_id,
        )
        return ReviewOut(
            reply=inbound_out(result.reply),
            consent_event_id=result.consent_event_id,
            canceled=result.canceled,
        )

    return routes
