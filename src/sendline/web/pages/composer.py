"""The composer: a message counted and checked as it is typed.

`_composer.html`'s macro puts a textarea on any page (this one, the automation
builder...); htmx posts it to /app/composer/check on each pause in typing and swaps in
the counter, the findings and the previews (`_composer_result.html`). Without
JavaScript the composer page's form posts the same check and gets the whole page back.
"""

# No `from __future__ import annotations`: FastAPI evaluates `Depends(web.user)` in router().
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from sendline.errors import SendlineError
from sendline.services.composer import (
    DraftCheck,
    available_tags,
    check_draft,
    contact_choices,
    parse_contact_id,
)
from sendline.services.users import WebUser
from sendline.web.context import PREFIX, Form, Web

FIELD = "composer_field"
CONTACT = "composer_contact"
EVENTS = "composer_events"
# A field name from the page that posted: only the textarea's name, echoed into ids.
_MAX_NAME = 100


def router(web: Web) -> APIRouter:
    pages = APIRouter()
    User = Annotated[WebUser, Depends(web.user)]
    Posted = Annotated[Form, Depends(web.form)]

    @pages.get(PREFIX + "/composer", response_class=HTMLResponse)
    def composer_page(
        request: Request, user: User, body: str = "", contact_id: str = ""
    ) -> HTMLResponse:
        form = Form(values={"body": body[:5_000].replace("\x00", "")})
        chosen = contact_id if contact_id.isdigit() else ""
        return _page(web, request, user, form, None, chosen)

    @pages.post(PREFIX + "/composer", response_class=HTMLResponse)
    def composer_post(request: Request, user: User, form: Posted) -> HTMLResponse:
        """The check without JavaScript: the whole page, the result under the text."""
        form.values.setdefault(FIELD, "body")
        check, error_field = _check(web, user, form)
        status = 400 if error_field else 200
        chosen = form.get(f"{CONTACT}.body", form.get(CONTACT))
        return _page(web, request, user, form, check, chosen, status_code=status)

    @pages.post(PREFIX + "/composer/check", response_class=HTMLResponse)
    def composer_check(request: Request, user: User, form: Posted) -> HTMLResponse:
        """The counter region for htmx. A bad draft is a 200 with its message: htmx
        swaps only successful answers, and the message is the answer."""
        check, _ = _check(web, user, form)
        return web.render(
            request, "_composer_result.html", user, name=_name(form), form=form, check=check
        )

    @pages.get(PREFIX + "/composer/extras", response_class=HTMLResponse)
    def composer_extras(
        request: Request, user: User, name: str = "body", contact_id: str = "", events: str = ""
    ) -> HTMLResponse:
        """The tags to insert and the contacts to preview for: loaded once per composer
        (not on each keystroke), so a list the user opened stays open."""
        tags = available_tags(web.sessions, user.account_id)
        return web.render(
            request,
            "_composer_extras.html",
            user,
            name=_clean_name(name),
            tags=tags,
            contacts=contact_choices(web.sessions, user.account_id),
            selected=contact_id if contact_id.isdigit() else "",
            events=bool(events),
        )

    return pages


def _page(
    web: Web,
    request: Request,
    user: WebUser,
    form: Form,
    check: DraftCheck | None,
    contact_id: str,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    return web.render(
        request,
        "composer.html",
        user,
        status_code=status_code,
        active="composer",
        form=form,
        check=check,
        contact_id=contact_id,
    )


def _check(web: Web, user: WebUser, form: Form) -> tuple[DraftCheck | None, str | None]:
    """The check of the posted draft; on bad input, None and the error beside its field
    (what the user typed stays in their textarea: only the counter is replaced)."""
    name = _name(form)
    try:
        # The chooser beside this textarea; a plain `composer_contact` for other clients.
        contact_id = parse_contact_id(form.get(f"{CONTACT}.{name}", form.get(CONTACT)))
        check = check_draft(
            web.sessions,
            user.account_id,
            form.get(name),
            web.shorteners,
            contact_id=contact_id,
            event_tags=bool(form.get(EVENTS)),
        )
    except SendlineError as exc:
        field = name if exc.field in (None, "body") else exc.field
        form.errors[field or name] = exc.message
        return None, field
    return check, None


def _name(form: Form) -> str:
    return _clean_name(form.get(FIELD, "body"))


def _clean_name(name: Any) -> str:
    text = str(name)[:_MAX_NAME]
    return text if text.strip() else "body"
