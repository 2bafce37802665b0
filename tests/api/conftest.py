"""An app on the test database and two accounts with a key each, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.app import create_app
from sendline.bootstrap import Runtime
from sendline.config import Settings
from sendline.services.api_keys import create_key
from tests.engine.factories import make_account, make_contact

SECRET_KEY = Fernet.generate_key().decode()


@dataclass(frozen=True)
class Tenant:
    account_id: int
    contact_id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def app_client(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path, **settings: Any
) -> Iterator[TestClient]:
    """A TestClient on an app on the test database. A rate limit no test reaches unless
    it asks for one (`test_limits.py` does)."""
    chosen: dict[str, Any] = {"api_rate": 100_000.0, "api_burst": 100_000, **settings}
    url = engine.url.render_as_string(hide_password=False)
    app = create_app(
        Runtime(Settings(data_dir=tmp_path, database_url=url, **chosen), engine, sessions)
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def client(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> Iterator[TestClient]:
    """The app as `sendline serve` runs it with no SENDLINE_SECRET_KEY."""
    yield from app_client(engine, session_factory, tmp_path)


@pytest.fixture
def keyed_client(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> Iterator[TestClient]:
    """The app with a SENDLINE_SECRET_KEY, so provider and webhook secrets can be sealed."""
    yield from app_client(engine, session_factory, tmp_path, secret_keys=(SECRET_KEY,))


def _tenant(session: Session, sessions: sessionmaker[Session], name: str, phone: str) -> Tenant:
    account = make_account(session, name)
    contact = make_contact(session, account, phone)
    contact.email = f"ada@{name.lower()}.example"
    session.commit()
    return Tenant(account.id, contact.id, create_key(sessions, name, "tests").key)


@pytest.fixture
def acme(session: Session, session_factory: sessionmaker[Session]) -> Tenant:
    return _tenant(session, session_factory, "Acme", "+14158675309")


@pytest.fixture
def globex(session: Session, session_factory: sessionmaker[Session], acme: Tenant) -> Tenant:
    return _tenant(session, session_factory, "Globex", "+14158675308")
