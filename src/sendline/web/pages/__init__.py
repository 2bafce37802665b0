"""The dashboard's pages, one module each; `PAGES` is what `web.install` mounts, in
this order (the first route that matches a path answers it). Each router is flat (no
nested routers), so `app.state.web_routes` lists every page."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from sendline.web.context import Web
from sendline.web.pages import (
    automations,
    composer,
    contact_page,
    contacts,
    imports,
    inbox,
    messages,
    overview,
    sandbox,
    settings,
    settings_integrations,
)

PAGES: list[Callable[[Web], APIRouter]] = [
    overview.router,
    composer.router,
    automations.router,
    imports.router,  # before the contact page: /contacts/import is not a contact's id
    contacts.router,
    contact_page.router,
    messages.router,
    inbox.router,
    settings.router,
    settings_integrations.router,
    sandbox.router,
]
