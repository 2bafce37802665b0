"""Errors on dashboard pages become pages, never JSON or a traceback.

The API's handlers (api/problems.py) stay in charge of everything outside /app; for
/app paths each one is wrapped: a missing session redirects to the sign-in page, a
foreign or unknown object is a 404 page, a refused action is a page that says why.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException

from sendline.api.problems import status_of
from sendline.errors import SendlineError
from sendline.services.users import SignInRequired
from sendline.web.context import PREFIX, CsrfRejected, Web

Handler = Callable[[Request, Exception], Awaitable[Response] | Response]
log = logging.getLogger("sendline.web")


def install(app: FastAPI, web: Web) -> None:
    for kind in (SendlineError, RequestValidationError, HTTPException, DataError, OperationalError):
        api_handler = app.exception_handlers.get(kind)
        app.add_exception_handler(kind, _for_pages(web, api_handler))
    app.add_exception_handler(Exception, _server_error(web))


def _is_page(request: Request) -> bool:
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def _for_pages(web: Web, api_handler: Handler | None) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if not _is_page(request) and api_handler is not None:
            answer = api_handler(request, exc)
            return await answer if isinstance(answer, Awaitable) else answer
        return page_for(web, request, exc)

    return handle


def page_for(web: Web, request: Request, exc: Exception) -> Response:
    """The page that answers `exc` on a dashboard path."""
    if isinstance(exc, SignInRequired):
        target = f"{PREFIX}/login?next={quote(request.url.path)}"
        if request.headers.get("HX-Request") == "true":
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    user = getattr(request.state, "web_user", None)
    status, title, detail = _describe(exc)
    return web.render(request, "error.html", user, status_code=status, title=title, detail=detail)


def _describe(exc: Exception) -> tuple[int, str, str]:
    if isinstance(exc, CsrfRejected):
        return 403, "Refused", exc.message
    if isinstance(exc, SendlineError):
        status = status_of(exc)
        title = "Not found" if status == 404 else "That did not work"
        return status, title, exc.message
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return 404, "Not found", "There is no such page."
        return exc.status_code, "That did not work", str(exc.detail)
    if isinstance(exc, RequestValidationError):
        return 422, "That did not work", "The link or form holds a value that is not valid."
    if isinstance(exc, DataError):
        return 422, "That did not work", "A value could not be stored; nothing was changed."
    if isinstance(exc, OperationalError):
        return 503, "Busy", "The database is busy or unreachable; try again in a moment."
    return 500, "Something went wrong", "Sendline hit an error; nothing was changed."


def _server_error(web: Web) -> Handler:
    def handle(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        if _is_page(request):
            return page_for(web, request, exc)
        return PlainTextResponse("Internal Server Error", status_code=500)

    return handle
