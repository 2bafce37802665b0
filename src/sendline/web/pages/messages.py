"""Messages: the log, filtered and paged (keyset, newest first); one message with its
status history and a Cancel; and the held view: what is held, grouped by reason with
what fixes each, released all at once per reason or one by one.

Through the API's services (`services.messages`): the same filters, the same release
(every send check run again, all or nothing) and the same cancel (credits released
through the ledger). Another account's message is a 404 page, and in a release it
changes nothing.
"""

# No `from __future__ import annotations`: FastAPI evaluates `Depends(web.user)` in router().
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from sendline.engine.pipeline import HOLD_REASONS
from sendline.engine.verdicts import HOLD_FIXES
from sendline.errors import SendlineError
from sendline.services.contact_queries import contact_names
from sendline.services.messages import (
    MAX_RELEASE,
    MessageFilter,
    cancel,
    get_message,
    message_page,
    release_held,
)
from sendline.services.timeline import held_groups
from sendline.services.users import WebUser
from sendline.store.engine_models import MESSAGE_STATUSES
from sendline.store.ids import parse_id
from sendline.web.context import PREFIX, Form, Web
from sendline.web.pages.contact_page import before_of, object_id

PAGE_SIZE = 50
FILTERS = ("status", "reason", "automation_id", "contact_id", "created_from", "created_until")
# Earlier names of the date filters, still read so that old links keep working.
OLD_NAMES = {"since": "created_from", "until": "created_until"}
CANCELABLE = ("queued", "held")


def router(web: Web) -> APIRouter:
    pages = APIRouter()
    User = Annotated[WebUser, Depends(web.user)]
    Posted = Annotated[Form, Depends(web.form)]

    @pages.get(PREFIX + "/messages", response_class=HTMLResponse)
    def messages(request: Request, user: User) -> HTMLResponse:
        return _log(web, request, user, Form())

    @pages.post(PREFIX + "/messages/release", response_class=HTMLResponse, response_model=None)
    def release(request: Request, user: User, form: Posted) -> HTMLResponse | RedirectResponse:
        reason = form.get("reason") or None
        ids = [parse_id(text) for text in form.getlist("ids")]
        if reason is not None and reason not in HOLD_REASONS:
            form.errors["_form"] = "that is not a hold reason"
        elif reason is None and not ids:
            form.errors["_form"] = "tick the held messages to release first"
        elif None in ids or len(ids) > MAX_RELEASE:
            form.errors["_form"] = "those are not held messages of this account"
        if form.ok:
            try:
                results = release_held(
                    web.sessions,
                    user.account_id,
                    ids=[i for i in ids if i is not None] if reason is None else (),
                    reason=reason,
                    shorteners=web.shorteners,
                )
            except SendlineError as exc:
                form.fail(exc)
            else:
                queued = sum(1 for item in results if item.status == "queued")
                done = {"status": "held", "released": queued, "still": len(results) - queued}
                return RedirectResponse(f"{PREFIX}/messages?{urlencode(done)}", status_code=303)
        return _log(web, request, user, form, status_code=400, held_view=True)

    @pages.get(PREFIX + "/messages/{message_id}", response_class=HTMLResponse)
    def message(request: Request, message_id: str, user: User) -> HTMLResponse:
        return _detail(web, request, user, object_id(message_id, "message"), Form())

    @pages.post(
        PREFIX + "/messages/{message_id}/cancel", response_class=HTMLResponse, response_model=None
    )
    def cancel_message(
        request: Request, message_id: str, user: User, form: Posted
    ) -> HTMLResponse | RedirectResponse:
        found = get_message(web.sessions, user.account_id, object_id(message_id, "message"))
        try:
            cancel(web.sessions, user.account_id, found.message.id)
        except SendlineError as exc:
            form.fail(exc)
            return _detail(web, request, user, found.message.id, form, status_code=409)
        target = f"{PREFIX}/messages/{found.message.id}?canceled=1"
        return RedirectResponse(target, status_code=303)

    return pages


def _detail(
    web: Web,
    request: Request,
    user: WebUser,
    message_id: int,
    form: Form,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    found = get_message(web.sessions, user.account_id, message_id)
    return web.render(
        request,
        "message.html",
        user,
        status_code=status_code,
        active="messages",
        m=found.message,
        history=found.history,
        form=form,
        cancelable=found.message.status in CANCELABLE,
        canceled=request.query_params.get("canceled") == "1",
        fixes=HOLD_FIXES,
    )


def _log(
    web: Web,
    request: Request,
    user: WebUser,
    form: Form,
    *,
    status_code: int = 200,
    held_view: bool = False,
) -> HTMLResponse:
    """The log as the query string filters it; with `status=held`, the held view."""
    query = {key: value.replace("\x00", "") for key, value in request.query_params.items()}
    for old, new in OLD_NAMES.items():
        if old in query:
            query.setdefault(new, query.pop(old))
    search = Form(values=query)
    where = _filter(search)
    rows = (
        message_page(web.sessions, user.account_id, where, limit=PAGE_SIZE + 1) if search.ok else []
    )
    shown = rows[:PAGE_SIZE]
    older = None
    if len(rows) > PAGE_SIZE and shown:
        kept = {key: search.get(key) for key in FILTERS if search.get(key)}
        older = "?" + urlencode(kept | {"before": str(shown[-1].id)})
    held_view = held_view or search.get("status") == "held"
    # A message not yet written has no number: its row names the contact instead.
    unnumbered = [m.contact_id for m in shown if m.contact_id is not None and not m.to]
    return web.render(
        request,
        "messages.html",
        user,
        status_code=status_code if search.ok else 400,
        active="messages",
        search=search,
        messages=shown,
        names=contact_names(web.sessions, user.account_id, unnumbered),
        older=older,
        form=form,
        held_view=held_view,
        groups=held_groups(web.sessions, user.account_id) if held_view else [],
        fixes=HOLD_FIXES,
        released=_count(search.get("released")),
        still=_count(search.get("still")),
        max_release=MAX_RELEASE,
        statuses=[("", "Any")] + [(s, s) for s in MESSAGE_STATUSES],
        reasons=[("", "Any")] + [(r, r.replace("_", " ")) for r in HOLD_REASONS],
    )


def _count(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 7 else None


def _filter(search: Form) -> MessageFilter:
    """The filter the query string asks for; each bad value is an error beside it."""
    status = search.get("status") or None
    if status is not None and status not in MESSAGE_STATUSES:
        search.errors["status"] = "choose a status from the list"
    reason = search.get("reason") or None
    if reason is not None and reason not in HOLD_REASONS:
        search.errors["reason"] = "choose a hold reason from the list"
    ids: dict[str, int | None] = {}
    for key in ("automation_id", "contact_id"):
        text = search.get(key).strip()
        ids[key] = parse_id(text) if text else None
        if text and ids[key] is None:
            search.errors[key] = "an id is a whole number, like 42"
    since, until = _day(search, "created_from"), _day(search, "created_until")
    return MessageFilter(
        status=status if "status" not in search.errors else None,
        reason=reason if "reason" not in search.errors else None,
        automation_id=ids["automation_id"],
        contact_id=ids["contact_id"],
        created_after=datetime.combine(since, time(), UTC) if since else None,
        created_before=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
        before_id=before_of(search.get("before")),
    )


def _day(search: Form, key: str) -> date | None:
    """A date field (YYYY-MM-DD, a day in UTC); a bad one is an error beside it."""
    text = search.get(key).strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        search.errors[key] = "a date, like 2026-05-01"
        return None
    if not 2000 <= day.year <= 2100:
        search.errors[key] = "a date between the years 2000 and 2100"
        return None
    return day
