"""The REST API, version 1, under `/api/v1`: one router per resource, every route
authenticated by an API key (`auth.py`), errors as problem details (`api/problems.py`)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.v1 import account, contacts, events
from sendline.api.v1.auth import Authenticator

PREFIX = "/api/v1"


def v1_router(sessions: sessionmaker[Session]) -> APIRouter:
    authenticator = Authenticator(sessions)
    router = APIRouter(prefix=PREFIX)
    router.include_router(account.router(sessions, authenticator))
    router.include_router(events.router(sessions, authenticator))
    router.include_router(contacts.router(sessions, authenticator))
    return router


__all__ = ["PREFIX", "v1_router"]
