"""What every dashboard page is given: the database, the settings, the templates and
the signed-in user. Built once in `web.install`; page modules take it as `web`."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import UploadFile

from sendline.config import Settings
from sendline.errors import SendlineError
from sendline.services.users import WebUser, session_user
from sendline.sms.links import ShortenerList

PREFIX = "/app"
SESSION_COOKIE = "sendline_session"
SIGN_IN_CSRF_COOKIE = "sendline_signin_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TEMPLATES = Path(__file__).parent / "templates"


class CsrfRejected(SendlineError):
    """A form or htmx request without its session's CSRF token (or from another
    origin): refused before anything runs."""

    code = "csrf_failed"


@dataclass
class Form:
    """A submitted form: what the user typed (kept, to show it again) and the errors
    to put beside each field (`_form` for the form as a whole)."""

    values: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, UploadFile] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def getlist(self, name: str) -> list[str]:
        return self.lists.get(name, [])

    def fail(self, error: SendlineError, default_field: str = "_form") -> None:
        """Put a domain error beside the field it names (or `default_field`)."""
        self.errors[error.field or default_field] = error.message

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Web:
    sessions: sessionmaker[Session]
    settings: Settings
    shorteners: ShortenerList
    templates: Jinja2Templates

    def user(self, request: Request) -> WebUser:
        """The signed-in user (SignInRequired, a redirect to the sign-in page, if none).
        Memoised on the request: the CSRF check and the page share one lookup."""
        known = getattr(request.state, "web_user", None)
        if isinstance(known, WebUser):
            return known
        found = session_user(self.sessions, request.cookies.get(SESSION_COOKIE))
        request.state.web_user = found
        return found

    async def form(self, request: Request) -> Form:
        """The submitted form, its strings stripped of NULs no database would store."""
        data = await request.form()
        form = Form()
        for key, value in data.multi_items():
            if isinstance(value, UploadFile):
                form.files[key] = value
                continue
            text = value.replace("\x00", "")
            form.lists.setdefault(key, []).append(text)
            form.values.setdefault(key, text)
        return form

    async def check_csrf(self, request: Request) -> None:
        """Every unsafe request must carry its session's token, in the form or (htmx)
        in a header, and come from this origin. Checked before the route runs."""
        if request.method not in UNSAFE_METHODS:
            return
        _same_origin(request)
        user = self.user(request)
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            sent = (await self.form(request)).get(CSRF_FIELD)
        if not sent or not hmac.compare_digest(sent, user.csrf_token):
            raise CsrfRejected("this form expired or did not come from Sendline; reload the page")

    def render(
        self,
        request: Request,
        template: str,
        user: WebUser | None,
        *,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """A page (or, for htmx, a fragment) rendered with what every page shows."""
        context.setdefault("active", "")
        return self.templates.TemplateResponse(
            request,
            template,
            {"user": user, "htmx": request.headers.get("HX-Request") == "true", **context},
            status_code=status_code,
        )


def _same_origin(request: Request) -> None:
    """A browser names the page that sent a form in Origin: another site's page is
    refused even if it somehow had a token."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return
    host = request.headers.get("Host", "")
    if origin.split("://", 1)[-1] != host:
        raise CsrfRejected("this form was sent from another site")
