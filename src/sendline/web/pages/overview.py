"""The overview: the account at a glance, and what needs action."""

# No `from __future__ import annotations`: FastAPI evaluates `Depends(web.user)` in router().
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from sendline.services.credits import credit_statement
from sendline.services.users import WebUser
from sendline.web.context import PREFIX, Web


def router(web: Web) -> APIRouter:
    pages = APIRouter()

    @pages.get(PREFIX + "/", response_class=HTMLResponse)
    def overview(request: Request, user: Annotated[WebUser, Depends(web.user)]) -> HTMLResponse:
        statement = credit_statement(web.sessions, user.account_id)
        return web.render(request, "overview.html", user, active="overview", credits=statement)

    return pages
