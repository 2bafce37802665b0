"""The web dashboard: server-rendered pages (Jinja2 + htmx) under /app.

A thin shell like the CLI and the API: each page parses a form, calls a service and
renders the result; domain errors become messages beside the fields they name. One
stylesheet and a vendored htmx (static/), no build step and nothing from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from sendline.config import Settings
from sendline.sms.links import ShortenerList
from sendline.web import auth, errors
from sendline.web.context import PREFIX, TEMPLATES, Web
from sendline.web.pages import PAGES

STATIC = Path(__file__).parent / "static"


def install(
    app: FastAPI,
    sessions: sessionmaker[Session],
    settings: Settings,
    shorteners: ShortenerList,
) -> Web:
    """Add the dashboard to `app`: its pages, its static files, its error pages."""
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.globals["prefix"] = PREFIX
    web = Web(sessions, settings, shorteners, templates)
    app.include_router(auth.router(web), include_in_schema=False)
    for page in PAGES:
        # Every page needs a session and, for a POST, its CSRF token: the check runs
        # before the route, so a forged form never reaches a service.
        guarded = APIRouter(dependencies=[Depends(web.check_csrf)])
        guarded.include_router(page(web))
        app.include_router(guarded, include_in_schema=False)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    errors.install(app, web)
    return web
