"""The web dashboard: server-rendered pages (Jinja2 + htmx) under /app.

A thin shell like the CLI and the API: each page parses a form, calls a service and
renders the result; domain errors become messages beside the fields they name. One
stylesheet and a vendored htmx (static/), no build step and nothing from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
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
    sign_in = auth.router(web)
    app.include_router(sign_in, include_in_schema=False)
    mounted = [sign_in]
    for page in PAGES:
        # Every page needs a session and, for a POST, its CSRF token: the check runs
        # before the route, so a forged form never reaches a service.
        routes = page(web)
        if not all(isinstance(route, APIRoute) for route in routes.routes):
            # A nested router's routes would be missing from web_routes, which the
            # tests walk to prove no page answers a 500: keep page routers flat.
            raise TypeError(f"{page.__module__}: a page router must not include routers")
        guarded = APIRouter(dependencies=[Depends(web.check_csrf)])
        guarded.include_router(routes)
        app.include_router(guarded, include_in_schema=False)
        mounted.append(routes)
    # The pages' (method, path) pairs: what tests walk, as the API's walk its schema.
    app.state.web_routes = sorted(
        (method, route.path)
        for router in mounted
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in (route.methods or set()) - {"HEAD"}
    )
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    errors.install(app, web)
    return web
