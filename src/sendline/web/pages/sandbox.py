"""The sandbox phone: each contact's phone as the sandbox carrier sees it, with a box
to reply as that contact (try STOP). Only the sandbox's own texts show here."""

# No `from __future__ import annotations`: FastAPI evaluates `Depends(web.user)` in router().
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from sendline.errors import SendlineError
from sendline.services.inbox import Received
from sendline.services.sandbox_phone import MAX_REPLY, conversation, list_phones, reply
from sendline.services.users import WebUser
from sendline.web.context import PREFIX, Form, Web

# What a reply did, in words (the `did` of the redirect after it: never user text).
DID = {
    "opt_out": "Opted out: the confirmation text arrives here once the worker sends it.",
    "opt_out_again": "Already opted out: no second confirmation.",
    "opt_in": "Opted in again: the confirmation text arrives here once the worker sends it.",
    "help": "HELP: the account's help text arrives here once the worker sends it.",
    "review": "It may ask to stop: it waits in the inbox's review queue.",
    "none": "Reply stored in the inbox (and passed to automations).",
    "nobody": "No contact has this number: the text was stored, nothing else done.",
}


def _did(handled: list[Received]) -> str:
    if not handled or not handled[0].has_contact:
        return "nobody"
    first = handled[0]
    if first.action == "opt_out" and not first.replied:
        return "opt_out_again"
    return first.action if first.action in DID else "none"


def router(web: Web) -> APIRouter:
    pages = APIRouter()
    User = Annotated[WebUser, Depends(web.user)]

    @pages.get(PREFIX + "/sandbox", response_class=HTMLResponse)
    def phones(request: Request, user: User) -> HTMLResponse:
        found = list_phones(web.sessions, user.account_id)
        return web.render(request, "sandbox.html", user, active="phone", phones=found)

    def show(
        request: Request, user: WebUser, ref: str, form: Form | None = None, status: int = 200
    ) -> HTMLResponse:
        talk = conversation(web.sessions, user.account_id, ref)
        did = DID.get(request.query_params.get("did", ""), "")
        return web.render(
            request,
            "sandbox_phone.html",
            user,
            status_code=status,
            active="phone",
            talk=talk,
            ref=quote(ref, safe="+"),
            form=form,
            did=did,
            max_reply=MAX_REPLY,
        )

    @pages.get(PREFIX + "/sandbox/{ref}", response_class=HTMLResponse)
    def phone(request: Request, user: User, ref: str) -> HTMLResponse:
        return show(request, user, ref)

    @pages.get(PREFIX + "/sandbox/{ref}/thread", response_class=HTMLResponse)
    def thread(request: Request, user: User, ref: str) -> HTMLResponse:
        """The bubbles alone: the phone page polls this every 2 s."""
        talk = conversation(web.sessions, user.account_id, ref)
        return web.render(request, "sandbox_thread.html", user, talk=talk, ref=quote(ref, safe="+"))

    @pages.post(PREFIX + "/sandbox/{ref}/reply", response_model=None)
    def send(
        request: Request, user: User, ref: str, form: Annotated[Form, Depends(web.form)]
    ) -> HTMLResponse | RedirectResponse:
        conversation(web.sessions, user.account_id, ref)  # another account's: a 404 page
        try:
            handled = reply(web.sessions, user.account_id, ref, form.get("body"))
        except SendlineError as exc:
            form.fail(exc, "body")
            return show(request, user, ref, form, 400)
        target = f"{PREFIX}/sandbox/{quote(ref, safe='+')}?did={_did(handled)}"
        return RedirectResponse(target, status_code=303)

    return pages
