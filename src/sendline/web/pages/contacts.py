"""Contacts: search them (phone in any spelling, email, tag, list, consent or phone status), a
keyset page at a time, and create one. Through the API's services: the same search
(`contact_queries.search_contacts`), the same create (its tags and lists would fire
triggers as from the CLI). The contact page is `contact_page.py`, imports `imports.py`.
"""

# No `from __future__ import annotations`: FastAPI evaluates `Depends(web.user)` in router().
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from sendline.errors import SendlineError
from sendline.services import contacts as service
from sendline.services.contact_queries import (
    ContactFilter,
    list_counts,
    search_contacts,
    tag_counts,
)
from sendline.services.users import WebUser
from sendline.store.contact_values import MAX_EMAIL, MAX_NAME, MAX_PHONE, MAX_TAG
from sendline.store.models import CONSENT_STATUSES, PHONE_STATUSES
from sendline.web.context import PREFIX, Form, Web
from sendline.web.pages.contact_page import before_of, fail, identity

PAGE_SIZE = 50
SUGGESTIONS = 200  # tags and lists offered as you type in the search
SEARCH_LIMITS = {
    "phone": MAX_PHONE,
    "email": MAX_EMAIL,
    "tag": MAX_TAG,
    "list": MAX_NAME,
}
CHOICES = {"consent": CONSENT_STATUSES, "phone_status": PHONE_STATUSES}  # select fields
CHOICE_NAMES = {"consent": "consent status", "phone_status": "phone status"}
PHONE_STATUS_TEXT = {
    "ok": "can be texted",
    "no_phone": "no phone",
    "invalid_phone": "invalid number",
    "landline": "landline",
}


def router(web: Web) -> APIRouter:
    pages = APIRouter()

    @pages.get(PREFIX + "/contacts", response_class=HTMLResponse)
    def contacts(request: Request, user: Annotated[WebUser, Depends(web.user)]) -> HTMLResponse:
        return _search_page(web, request, user, Form())

    @pages.post(PREFIX + "/contacts", response_class=HTMLResponse, response_model=None)
    def create(
        request: Request,
        user: Annotated[WebUser, Depends(web.user)],
        form: Annotated[Form, Depends(web.form)],
    ) -> HTMLResponse | RedirectResponse:
        values = identity(form)
        if form.ok:
            try:
                change = service.create(
                    web.sessions,
                    user.account_id,
                    phone=values["phone"],
                    email=values["email"],
                    first_name=values["first_name"],
                    last_name=values["last_name"],
                )
            except SendlineError as exc:
                fail(form, exc)
            else:
                target = f"{PREFIX}/contacts/{change.contact.id}?notice=created"
                return RedirectResponse(target, status_code=303)
        return _search_page(web, request, user, form, status_code=400)

    return pages


def _search_page(
    web: Web, request: Request, user: WebUser, new: Form, *, status_code: int = 200
) -> HTMLResponse:
    search = Form(
        values={key: value.replace("\x00", "") for key, value in request.query_params.items()}
    )
    where = _filter(search)
    rows = []
    if search.ok:
        before = before_of(search.get("before"))
        rows = search_contacts(web.sessions, user.account_id, where, before=before, limit=PAGE_SIZE)
    shown = rows[:PAGE_SIZE]
    older = None
    if len(rows) > PAGE_SIZE and shown:
        older = _query(search, before=str(shown[-1].id))
    suggestions: dict[str, Any] = {
        "tags": [
            t.tag for t in tag_counts(web.sessions, user.account_id, after=None, limit=SUGGESTIONS)
        ],
        "lists": [
            x.name
            for x in list_counts(web.sessions, user.account_id, before=None, limit=SUGGESTIONS)
        ],
    }
    return web.render(
        request,
        "contacts.html",
        user,
        status_code=status_code if search.ok else 400,
        active="contacts",
        search=search,
        contacts=shown,
        older=older,
        searching=any(search.get(key) for key in (*SEARCH_LIMITS, *CHOICES)),
        consent_options=[("", "Any")] + [(s, s.replace("_", " ")) for s in CONSENT_STATUSES],
        phone_status_options=[("", "Any")] + [(s, PHONE_STATUS_TEXT[s]) for s in PHONE_STATUSES],
        form=new,
        **suggestions,
    )


def _filter(search: Form) -> ContactFilter:
    """The search the query string asks for; an over-long value is an error beside it."""
    given: dict[str, str | None] = {}
    for key, limit in SEARCH_LIMITS.items():
        value = search.get(key).strip()
        if len(value) > limit:
            search.errors[key] = f"at most {limit} characters"
        given[key] = value or None
    chosen: dict[str, str | None] = {}
    for key, allowed in CHOICES.items():
        chosen[key] = search.get(key) or None
        if chosen[key] is not None and chosen[key] not in allowed:
            search.errors[key] = f"choose a {CHOICE_NAMES[key]} from the list"
            chosen[key] = None
    return ContactFilter(
        given["phone"],
        given["email"],
        given["tag"],
        given["list"],
        chosen["consent"],
        phone_status=chosen["phone_status"],
    )


def _query(search: Form, **changes: str) -> str:
    kept = {key: search.get(key) for key in (*SEARCH_LIMITS, *CHOICES) if search.get(key)}
    return "?" + urlencode(kept | changes)
