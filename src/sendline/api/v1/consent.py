"""`/api/v1/contacts/{id}/consent`: record an opt-in or an opt-out with its proof (R4),
and read the history. Recorded by `services.contacts.record_consent`, the function
`sendline contacts opt-in` and `opt-out` call: the same rules refuse the same input (an
opt-in without the disclosure the contact saw is `disclosure_required`)."""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, Field, field_validator
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.problems import AccountKeyRequired
from sendline.api.v1.auth import Authenticator
from sendline.api.v1.pages import Cursor, Limit, Page, before_id, page_of
from sendline.api.v1.params import ObjectId
from sendline.api.v1.strings import NO_NUL
from sendline.errors import SendlineError
from sendline.services.api_keys import Caller
from sendline.services.contact_queries import consent_page
from sendline.services.contacts import ConsentRecord, record_consent

# The input field each consent error is about, for the problem's `field`.
FIELDS = {
    "disclosure_required": "disclosure",
    "bad_ip": "ip",
    "bad_consent_method": "method",
    "invalid_input": None,
}
STATUS_KINDS = {"opted_in": "opt_in", "opted_out": "opt_out"}
Method = Literal["form", "keyword", "import", "api", "agent"]  # store.models.CONSENT_METHODS


class ConsentOut(BaseModel):
    """One consent event: what was captured, how, where and by whom."""

    id: int
    status: Literal["opted_in", "opted_out"]
    method: str
    source: str
    disclosure: str | None
    ip: str | None
    user_agent: str | None
    occurred_at: datetime
    recorded_at: datetime
    recorded_by: str | None


class ConsentIn(BaseModel):
    """An opt-in (with the exact disclosure text the contact saw) or an opt-out."""

    status: Literal["opted_in", "opted_out"]
    method: Method
    disclosure: str | None = Field(default=None, max_length=5000, pattern=NO_NUL)
    source: str = Field(default="api", min_length=1, max_length=200, pattern=NO_NUL)
    ip: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    user_agent: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)
    occurred_at: AwareDatetime | None = None  # when the contact agreed (default: now)
    recorded_by: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL)

    @field_validator("occurred_at")
    @classmethod
    def plausible(cls, value: datetime | None) -> datetime | None:
        if value is not None and not 2000 <= value.year <= 2100:
            raise ValueError("occurred_at must be between the years 2000 and 2100")
        return value


def consent_out(record: ConsentRecord) -> ConsentOut:
    return ConsentOut(
        id=record.id,
        status="opted_in" if record.kind == "opt_in" else "opted_out",
        method=record.method,
        source=record.source,
        disclosure=record.disclosure,
        ip=record.ip,
        user_agent=record.user_agent,
        occurred_at=record.occurred_at.astimezone(UTC),
        recorded_at=record.recorded_at.astimezone(UTC),
        recorded_by=record.recorded_by,
    )


@contextmanager
def naming_fields(fields: dict[str, str | None]) -> Iterator[None]:
    """Name the input field a service error is about (by its code), when it names none."""
    try:
        yield
    except SendlineError as exc:
        if exc.field is None and fields.get(exc.code):
            exc.field = fields[exc.code]
        raise


def router(sessions: sessionmaker[Session], auth: Authenticator) -> APIRouter:
    routes = APIRouter(tags=["consent"])

    @routes.post("/contacts/{contact_id}/consent", status_code=201, response_model=ConsentOut)
    def post_consent(
        contact_id: ObjectId, body: ConsentIn, caller: Annotated[Caller, Depends(auth.caller)]
    ) -> ConsentOut:
        """Record consent captured elsewhere (a sign-up form, a call), as
        `sendline contacts opt-in` / `opt-out` does; `recorded_by` defaults to the key."""
        if caller.account_id is None:
            raise AccountKeyRequired("this route needs an account's key, not an admin key")
        with naming_fields(FIELDS):
            record = record_consent(
                sessions,
                caller.account_id,
                contact_id,
                kind=STATUS_KINDS[body.status],
                method=body.method,
                disclosure=body.disclosure,
                recorded_by=body.recorded_by or f"api key {caller.key_id}",
                source=body.source,
                ip=body.ip,
                user_agent=body.user_agent,
                occurred_at=body.occurred_at,
            )
        return consent_out(record)

    @routes.get("/contacts/{contact_id}/consent", response_model=Page[ConsentOut])
    def get_consent(
        contact_id: ObjectId,
        account_id: Annotated[int, Depends(auth.account_id)],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[ConsentOut]:
        """The contact's consent audit trail, newest recorded first (R4)."""
        rows = consent_page(sessions, account_id, contact_id, before=before_id(cursor), limit=limit)
        return page_of(rows, limit, consent_out, lambda r: r.id)

    return routes
