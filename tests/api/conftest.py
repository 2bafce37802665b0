"""An app on the test database and two accounts with a key each, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.app import create_app
from sendline.bootstrap import Runtime
from sendline.config import Settings
from sendline.services.api_keys import create_key
from tests.engine.factories import make_account, make_contact


@dataclass(frozen=True)
class Tenant:
    account_id: int
    contact_id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def client(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> Iterator[TestClient]:
    # A rate limit no test reaches: `test_limits.py` builds its own app to test it.
    settings = Settings(
        data_dir=tmp_path,
        database_url=engine.url.render_as_string(hide_password=False),
        api_rate=100_000.0,
        api_burst=100_000,
    )
    app = create_app(Runtime(settings, engine, session_factory))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


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
