"""`/api/v1/contacts`: create, search, read, change, delete and export contacts.

What `sendline contacts create|list|show|update|delete|export` does, through the same
service functions (`services/contacts.py`): field, tag and list triggers fire exactly
as from the CLI. `router()` also mounts the contact's tags and lists (`tags.py`), its
consent (`consent.py`) and the CSV imports (`imports.py`).
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
import tempfile
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.v1 import consent, imports, tags
from sendline.api.v1.auth import Authenticator
from sendline.api.v1.consent import naming_fields
from sendline.api.v1.contact_models import ContactChangeOut, ContactOut, change_out, contact_out
from sendline.api.v1.pages import Cursor, Limit, Page, before_id, page_of
from sendline.api.v1.params import ObjectId
from sendline.api.v1.strings import NO_NUL
from sendline.config import Settings
from sendline.services import contacts as service
from sendline.services.contact_queries import ContactFilter, search_contacts
from sendline.store.contact_values import MAX_EMAIL, MAX_NAME, MAX_PHONE, MAX_TAG, UNSET

# The input field each contact error is about, for the problem's `field`.
FIELDS: dict[str, str | None] = {
    "bad_email": "email",
    "bad_name": "first_name",
    "bad_field": "fields",
    "no_identity": "phone",
}
EXPORT_CHUNK = 64 << 10

FieldKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
FieldValue = (
    Annotated[str, StringConstraints(max_length=1000, pattern=NO_NUL)]
    | Annotated[int, Field(ge=-(2**53), le=2**53)]
    | float
    | bool
    | None
)
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG, pattern=NO_NUL)]
ListName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=NO_NUL)]


class ContactIn(BaseModel):
    """A new contact: an email or a phone at least. Consent is recorded separately
    (`POST /contacts/{id}/consent`)."""

    email: str | None = Field(default=None, max_length=MAX_EMAIL, pattern=NO_NUL)
    phone: str | None = Field(default=None, max_length=MAX_PHONE, pattern=NO_NUL)
    first_name: str | None = Field(default=None, max_length=MAX_NAME, pattern=NO_NUL)
    last_name: str | None = Field(default=None, max_length=MAX_NAME, pattern=NO_NUL)
    fields: dict[FieldKey, FieldValue] = Field(default_factory=dict, max_length=100)
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    lists: list[ListName] = Field(default_factory=list, max_length=100)


class ContactPatch(BaseModel):
    """The attributes to change; a null clears one, an absent one is kept. A field
    set to null is removed."""

    email: str | None = Field(default=None, max_length=MAX_EMAIL, pattern=NO_NUL)
    phone: str | None = Field(default=None, max_length=MAX_PHONE, pattern=NO_NUL)
    first_name: str | None = Field(default=None, max_length=MAX_NAME, pattern=NO_NUL)
    last_name: str | None = Field(default=None, max_length=MAX_NAME, pattern=NO_NUL)
    fields: dict[FieldKey, FieldValue] = Field(default_factory=dict, max_length=100)

    def given(self, name: str) -> Any:
        return getattr(self, name) if name in self.model_fields_set else UNSET


def router(sessions: sessionmaker[Session], auth: Authenticator, settings: Settings) -> APIRouter:
    routes = APIRouter(tags=["contacts"])
    Account = Annotated[int, Depends(auth.account_id)]

    @routes.get("/contacts", response_model=Page[ContactOut])
    def list_contacts(
        account_id: Account,
        phone: Annotated[str | None, Query(max_length=MAX_PHONE, pattern=NO_NUL)] = None,
        email: Annotated[str | None, Query(max_length=MAX_EMAIL, pattern=NO_NUL)] = None,
        tag: Annotated[str | None, Query(max_length=MAX_TAG, pattern=NO_NUL)] = None,
        list_name: Annotated[
            str | None, Query(alias="list", max_length=MAX_NAME, pattern=NO_NUL)
        ] = None,
        consent: Literal["opted_in", "opted_out", "none"] | None = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[ContactOut]:
        """Search contacts, newest first: by phone (any spelling of the number), email,
        tag, list or consent status; every filter given must match."""
        where = ContactFilter(phone, email, tag, list_name, consent)
        rows = search_contacts(sessions, account_id, where, before=before_id(cursor), limit=limit)
        return page_of(rows, limit, contact_out, lambda r: r.id)

    @routes.post("/contacts", status_code=201, response_model=ContactOut)
    def create_contact(body: ContactIn, account_id: Account) -> ContactOut:
        """Create a contact; its tags and lists start automations as from the CLI."""
        with naming_fields(FIELDS):
            change = service.create(
                sessions,
                account_id,
                email=body.email,
                phone=body.phone,
                first_name=body.first_name,
                last_name=body.last_name,
                fields=body.fields,
                tags=body.tags,
                lists=body.lists,
            )
        return contact_out(change.contact)

    @routes.get(
        "/contacts/export",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {}}, "description": "The contacts as CSV."}},
    )
    def export_contacts(account_id: Account) -> StreamingResponse:
        """Every contact as CSV, in the columns `POST /imports` reads back (the same
        file `sendline contacts export` writes; formula-like cells are defused)."""
        spool = tempfile.SpooledTemporaryFile(max_size=4 << 20, mode="w+", newline="")  # noqa: SIM115
        try:
            service.export_contacts(sessions, account_id, spool)  # type: ignore[arg-type]
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return StreamingResponse(
            _chunks(spool),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="contacts.csv"'},
        )

    @routes.get("/contacts/{contact_id}", response_model=ContactOut)
    def get_contact(contact_id: ObjectId, account_id: Account) -> ContactOut:
        """A contact, with its latest consent event."""
        return contact_out(service.show(sessions, account_id, contact_id))

    @routes.patch("/contacts/{contact_id}", response_model=ContactChangeOut)
    def update_contact(
        contact_id: ObjectId, body: ContactPatch, account_id: Account
    ) -> ContactChangeOut:
        """Change attributes; field triggers fire for each value that changed."""
        with naming_fields(FIELDS):
            change = service.update(
                sessions,
                account_id,
                contact_id,
                email=body.given("email"),
                phone=body.given("phone"),
                first_name=body.given("first_name"),
                last_name=body.given("last_name"),
                fields=body.fields or None,
            )
        return change_out(change)

    @routes.delete("/contacts/{contact_id}", status_code=204, response_class=Response)
    def delete_contact(contact_id: ObjectId, account_id: Account) -> Response:
        """Delete a contact who has no consent records, messages or replies (those are
        kept as proof, R4: opt the contact out instead); 409 `contact_has_history`."""
        service.delete(sessions, account_id, contact_id)
        return Response(status_code=204)

    routes.include_router(tags.router(sessions, auth))
    routes.include_router(consent.router(sessions, auth))
    routes.include_router(imports.router(sessions, auth, settings.max_upload_mb << 20))
    return routes


def _chunks(spool: Any) -> Iterator[bytes]:
    try:
        while chunk := spool.read(EXPORT_CHUNK):
            yield chunk.encode("utf-8")
    finally:
        spool.close()
