"""The REST API, version 1, under `/api/v1`: one router per resource, every route
authenticated by an API key (`auth.py`), errors as problem details (`api/problems.py`)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.problems import API_RESPONSES
from sendline.api.v1 import (
    account,
    admin,
    automations,
    contacts,
    credits,
    events,
    inbound,
    keys,
    messages,
    providers,
    webhooks,
)
from sendline.api.v1.auth import Authenticator
from sendline.bootstrap import operator_shorteners
from sendline.config import Settings
from sendline.sms.links import ShortenerList

PREFIX = "/api/v1"


def v1_router(
    sessions: sessionmaker[Session], settings: Settings, shorteners: ShortenerList | None = None
) -> APIRouter:
    authenticator = Authenticator(sessions)
    if shorteners is None:  # read once, for every route checking links
        shorteners = operator_shorteners(settings)
    router = APIRouter(prefix=PREFIX, responses=API_RESPONSES)
    router.include_router(account.router(sessions, authenticator))
    router.include_router(events.router(sessions, authenticator))
    router.include_router(keys.router(sessions, authenticator))
    router.include_router(webhooks.router(sessions, authenticator, settings))
    router.include_router(messages.router(sessions, authenticator, shorteners))
    router.include_router(inbound.router(sessions, authenticator))
    router.include_router(automations.router(sessions, authenticator, shorteners))
    router.include_router(contacts.router(sessions, authenticator, settings))
    router.include_router(credits.router(sessions, authenticator))
    router.include_router(providers.router(sessions, authenticator, settings))
    router.include_router(admin.router(sessions, authenticator))
    return router


__all__ = ["PREFIX", "v1_router"]
