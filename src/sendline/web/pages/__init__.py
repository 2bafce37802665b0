"""The dashboard's pages, one module each; `PAGES` is what `web.install` mounts."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from sendline.web.context import Web
from sendline.web.pages import automations, overview

PAGES: list[Callable[[Web], APIRouter]] = [
    overview.router,
    automations.router,
]
