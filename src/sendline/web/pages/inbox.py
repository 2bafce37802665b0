"""The inbox: replies grouped by the contact who sent them, and the review queue (R12):
a free-text reply that may ask to stop waits here until a person decides."""

# No `from __future__ import annotations`: FastAPI evaluates `Depends(web.user)` in router().
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from sendline.api.problems import status_of
from sendline.errors import InvalidInput, NotFound, SendlineError
from sendline.services import contacts
from sendline.services.contact_queries import contact_names
from sendline.services.contacts import ContactView
from sendline.services.inbox import InboundView, get_inbound, page_inbound, review_reply
from sendline.services.users import WebUser
from sendline.store.ids import parse_id
from sendline.web.context import PREFIX, Form, Web

PAGE = 200  # inbound texts read for one page of conversations
THREAD = 50


@dataclass(frozen=True)
class Conversation:
    """One contact's (or unknown number's) replies: the latest, and how many wait."""

    latest: InboundView
    count: int
    awaiting: int


def conversations(texts: list[InboundView]) -> list[Conversation]:
    """Newest-first texts grouped by who sent them, in the order of their latest text."""
    groups: dict[str, list[InboundView]] = {}
    for text in texts:
        who = f"c{text.contact_id}" if text.contact_id is not None else f"n{text.from_number}"
        groups.setdefault(who, []).append(text)
    return [
        Conversation(rows[0], len(rows), sum(1 for r in rows if r.awaiting_review))
        for rows in groups.values()
    ]


def _number(text: str | None) -> int | None:
    return parse_id(text) if text else None


def router(web: Web) -> APIRouter:
    pages = APIRouter()
    User = Annotated[WebUser, Depends(web.user)]

    @pages.get(PREFIX + "/inbox", response_class=HTMLResponse)
    def inbox(request: Request, user: User) -> HTMLResponse:
        query = request.query_params
        review = query.get("review") == "1"
        contact_id = _number(query.get("contact"))
        before = _number(query.get("before"))
        texts = page_inbound(
            web.sessions,
            user.account_id,
            limit=PAGE,
            review=True if review else None,
            contact_id=contact_id,
            before_id=before,
        )
        older = texts[-1].id if len(texts) == PAGE else None
        talks = conversations(texts)
        wanted = [t.latest.contact_id for t in talks if t.latest.contact_id is not None]
        if contact_id is not None:
            wanted.append(contact_id)
        names = contact_names(web.sessions, user.account_id, wanted)
        return web.render(
            request,
            "inbox.html",
            user,
            active="inbox",
            talks=talks,
            names=names,
            review=review,
            contact_id=contact_id,
            older=older,
        )

    def detail(
        request: Request, user: WebUser, ref: str, form: Form | None = None, status: int = 200
    ) -> HTMLResponse:
        text = get_inbound(web.sessions, user.account_id, _inbound_id(ref))
        person: ContactView | None = None
        thread: list[InboundView] = []
        if text.contact_id is not None:
            person = contacts.show(web.sessions, user.account_id, text.contact_id)
            thread = page_inbound(
                web.sessions, user.account_id, limit=THREAD, contact_id=text.contact_id
            )
        return web.render(
            request,
            "inbox_text.html",
            user,
            status_code=status,
            active="inbox",
            text=text,
            person=person,
            thread=thread,
            form=form,
            done=request.query_params.get("done") == "1",
        )

    @pages.get(PREFIX + "/inbox/{ref}", response_class=HTMLResponse)
    def one(request: Request, user: User, ref: str) -> HTMLResponse:
        return detail(request, user, ref)

    @pages.post(PREFIX + "/inbox/{ref}/review", response_model=None)
    def decide(
        request: Request, user: User, ref: str, form: Annotated[Form, Depends(web.form)]
    ) -> HTMLResponse | RedirectResponse:
        inbound_id = get_inbound(web.sessions, user.account_id, _inbound_id(ref)).id
        decision = form.get("decision")
        try:
            if decision not in ("opt_out", "not_opt_out"):
                raise InvalidInput("choose Opt out this contact or Not an opt-out")
            review_reply(
                web.sessions,
                inbound_id,
                opt_out=decision == "opt_out",
                by=user.email,
                account=user.account_id,
            )
        except NotFound:
            raise
        except SendlineError as exc:
            form.fail(exc)
            return detail(
                request, user, ref, form, 400 if status_of(exc) == 422 else status_of(exc)
            )
        return RedirectResponse(f"{PREFIX}/inbox/{inbound_id}?done=1", status_code=303)

    return pages


def _inbound_id(ref: str) -> int:
    number = parse_id(ref)
    if number is None:
        raise NotFound(f"no inbound text {ref[:40]!r} in this account")
    return number
