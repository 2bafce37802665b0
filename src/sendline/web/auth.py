"""Sign-in and sign-out pages.

The sign-in form has no session yet, so its CSRF token is a double-submit cookie: the
page sets a random cookie and puts the same value in the form; another site can make a
browser post the form but cannot read the cookie to fill the field.
"""

# No `from __future__ import annotations`: FastAPI evaluates the routes' `Depends(web...)`
# annotations inside `router()`, where `web` exists.
import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sendline.errors import SendlineError
from sendline.services.users import SESSION_MAX, sign_in, sign_out
from sendline.web.context import (
    CSRF_FIELD,
    PREFIX,
    SESSION_COOKIE,
    SIGN_IN_CSRF_COOKIE,
    CsrfRejected,
    Form,
    Web,
)


def router(web: Web) -> APIRouter:
    pages = APIRouter()

    @pages.get(PREFIX + "/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "") -> Response:  # noqa: A002
        return _login_form(web, request, Form(values={"next": next}))

    @pages.post(PREFIX + "/login", response_class=HTMLResponse)
    def login(request: Request, form: Annotated[Form, Depends(web.form)]) -> Response:
        cookie = request.cookies.get(SIGN_IN_CSRF_COOKIE, "")
        sent = form.get(CSRF_FIELD)
        if not cookie or not sent or not hmac.compare_digest(cookie, sent):
            raise CsrfRejected("the sign-in form expired; reload the page and try again")
        try:
            signed = sign_in(web.sessions, form.get("email"), form.get("password"))
        except SendlineError as exc:
            form.fail(exc, "password")
            form.values.pop("password", None)  # never echoed back into the page
            return _login_form(web, request, form, status_code=400)
        response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            signed.token,
            max_age=int(SESSION_MAX.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        response.delete_cookie(SIGN_IN_CSRF_COOKIE, path=PREFIX + "/login")
        return response

    @pages.post(PREFIX + "/logout", dependencies=[Depends(web.check_csrf)])
    def logout(request: Request) -> Response:
        sign_out(web.sessions, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse(PREFIX + "/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return pages


def _login_form(web: Web, request: Request, form: Form, *, status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = web.render(
        request, "login.html", None, form=form, csrf_token=token, status_code=status_code
    )
    response.set_cookie(
        SIGN_IN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=PREFIX + "/login",
    )
    return response


def _safe_next(target: str) -> str:
    """Only a path of this dashboard: never an open redirect to another site."""
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/"
