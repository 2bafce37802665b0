"""`/api/v1/providers`: the carriers the account sends through, in failover order.

As `sendline providers add|list|remove|move|test`, through `services.providers`.
Secrets (a Twilio auth token, a gateway's secrets) are write-only: stored sealed with
SENDLINE_SECRET_KEY (without it an add is a 503, nothing stored), never returned;
SIDs and numbers come back masked. Another account's provider is 404.
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.v1.account import PLAIN_TEXT
from sendline.api.v1.auth import Authenticator
from sendline.api.v1.pages import Cursor, Limit, Page, before_id, page_of
from sendline.api.v1.params import ObjectId
from sendline.config import Settings
from sendline.providers.configs import MAX_CONFIG, MAX_LABEL
from sendline.services.providers import (
    HttpFields,
    ProviderLine,
    TwilioFields,
    add_provider,
    list_providers,
    move_provider,
    remove_provider,
    send_test_message,
)

MAX_POSITION = 1000
SECRET: JsonDict = {"writeOnly": True, "format": "password"}
Phone = Annotated[str, Field(max_length=32, pattern=PLAIN_TEXT)]


class _ProviderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_number: Phone | None = Field(default=None, description="The from-number, E.164.")
    label: str | None = Field(
        default=None, max_length=MAX_LABEL, pattern=PLAIN_TEXT, description="A name for people."
    )
    position: int | None = Field(
        default=None, ge=1, le=MAX_POSITION, description="Place in the failover order (1 first)."
    )
    carrier_confirms_optout: bool | None = Field(
        default=None,
        description="The carrier answers STOP itself (default: true for twilio, false for http).",
    )


class TwilioIn(_ProviderIn):
    """Twilio: the Account SID, the auth token, and a from-number or a Messaging Service."""

    kind: Literal["twilio"]
    account_sid: str = Field(max_length=64, pattern=PLAIN_TEXT, description="AC + 32 hex.")
    auth_token: str = Field(max_length=64, json_schema_extra=SECRET, description="32 hex.")
    messaging_service_sid: str | None = Field(
        default=None, max_length=64, pattern=PLAIN_TEXT, description="MG + 32 hex."
    )

    def fields(self) -> TwilioFields:
        return TwilioFields(
            self.account_sid, self.auth_token, self.from_number, self.messaging_service_sid
        )


class HttpIn(_ProviderIn):
    """A generic HTTP gateway: its YAML config (docs/providers.md) and the secrets the
    config refers to by name."""

    kind: Literal["http"]
    config: str = Field(max_length=MAX_CONFIG, pattern=PLAIN_TEXT, description="YAML.")
    secrets: dict[
        Annotated[str, Field(max_length=64)],
        Annotated[str, Field(max_length=4096, json_schema_extra=SECRET)],
    ] = Field(default_factory=dict, max_length=32)

    def fields(self) -> HttpFields:
        return HttpFields(self.config, dict(self.secrets), self.from_number)


ProviderIn = Annotated[TwilioIn | HttpIn, Field(discriminator="kind")]


class ProviderOut(BaseModel):
    """A provider as it may be shown: no secret; SIDs and numbers masked."""

    id: int
    name: str  # "twilio:7": what a message's `provider` says
    kind: str
    position: int
    label: str
    identity: str  # the Twilio Account SID, masked (AC12…89); "-" for a gateway
    sender: str  # the from-number (+1415•••0101) or Messaging Service SID, masked
    carrier_confirms_optout: bool


class ProviderAddedOut(ProviderOut):
    warnings: list[str]  # e.g. SENDLINE_PUBLIC_URL unset: no receipts or replies


class ProviderOrderOut(BaseModel):
    """The account's providers in their new failover order."""

    data: list[ProviderOut]


class MoveIn(BaseModel):
    position: int = Field(ge=1, le=MAX_POSITION, description="The new place, 1 first.")


class TestIn(BaseModel):
    to: Phone = Field(description="A consenting contact's number.")


class TestOut(BaseModel):
    """The test message queued; follow it at /api/v1/messages/{message_id}."""

    message_id: int
    to: str  # masked
    providers: list[str]  # the account's failover chain; empty: the sandbox


def provider_out(line: ProviderLine) -> ProviderOut:
    return ProviderOut(
        id=line.id,
        name=line.name,
        kind=line.kind,
        position=line.position,
        label=line.label,
        identity=line.identity,
        sender=line.sender,
        carrier_confirms_optout=line.carrier_confirms_optout,
    )


def router(sessions: sessionmaker[Session], auth: Authenticator, settings: Settings) -> APIRouter:
    routes = APIRouter(tags=["providers"])
    Account = Annotated[int, Depends(auth.account_id)]

    @routes.get("/providers", response_model=Page[ProviderOut])
    def get_providers(
        account_id: Account, limit: Limit = 50, cursor: Cursor = None
    ) -> Page[ProviderOut]:
        """The account's providers in failover order (position 1 first; the cursor is
        the last position shown). None: it sends through the sandbox."""
        after = before_id(cursor)
        lines = list_providers(sessions, account_id).providers
        shown = [line for line in lines if after is None or line.position > after]
        return page_of(shown[: limit + 1], limit, provider_out, lambda line: line.position)

    @routes.post("/providers", status_code=201, response_model=ProviderAddedOut)
    def post_provider(provider: ProviderIn, account_id: Account) -> ProviderAddedOut:
        """Add a provider (at `position`, default last), as `sendline providers add`.
        Every field is checked first (422 naming it, nothing stored); the secrets are
        stored sealed and never returned."""
        added = add_provider(
            sessions,
            settings,
            account_id,
            provider.fields(),
            label=provider.label,
            position=provider.position,
            carrier_confirms_optout=provider.carrier_confirms_optout,
        )
        out = provider_out(added.provider)
        return ProviderAddedOut(**out.model_dump(), warnings=list(added.warnings))

    @routes.delete("/providers/{provider_id}", response_model=ProviderOut)
    def delete_provider(provider_id: ObjectId, account_id: Account) -> ProviderOut:
        """Remove a provider; the ones after it move up. 409 `provider_in_use` while a
        message handed to it awaits reconciliation."""
        return provider_out(remove_provider(sessions, account_id, str(provider_id)))

    @routes.post("/providers/{provider_id}/move", response_model=ProviderOrderOut)
    def post_move(provider_id: ObjectId, move: MoveIn, account_id: Account) -> ProviderOrderOut:
        """Put a provider at `position` in the failover order; returns the new order."""
        order = move_provider(sessions, account_id, str(provider_id), move.position)
        return ProviderOrderOut(data=[provider_out(line) for line in order])

    @routes.post("/providers/{provider_id}/test", status_code=202, response_model=TestOut)
    def post_test(provider_id: ObjectId, test: TestIn, account_id: Account) -> TestOut:
        """Queue one real message to a consenting contact, as `sendline providers test`:
        through the normal checks (consent, clause, credits) and the account's failover
        chain (this provider is tried first when it is at position 1). A running worker
        sends it; its status is the message's."""
        queued = send_test_message(sessions, account_id, test.to, provider=str(provider_id))
        return TestOut(message_id=queued.message_id, to=queued.to, providers=list(queued.providers))

    return routes
