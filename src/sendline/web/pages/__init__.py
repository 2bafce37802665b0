"""The dashboard's pages, one module each; `PAGES` is what `web.install` mounts."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from sendline.web.context import Web
from sendline.web.pages import (
    composer,
    contacts,
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
    contacts.router,  # with the contact page and the imports
    messages.router,
    inbox.router,
    settings.router,
    settings_integrations.router,
    sandbox.router,
]
