"""What the webhook tests share: an app whose settings hold a secret key and allow
http:// to loopback, a clock the tests move, events written as the engine writes them,
a receiver on loopback, and a deliverer on the test database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
from sendline.engine.webhooks import WebhookDeliverer
from sendline.store.event_models import AccountEvent
from tests.fakes.webhook_receiver import WebhookReceiver

KEY = Fernet.generate_key().decode()
START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = field(default=START)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def hooks(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> Iterator[TestClient]:
    """The API, able to seal signing secrets and to register http://127.0.0.1 URLs."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=engine.url.render_as_string(hide_password=False),
        secret_keys=(KEY,),
        webhooks_allow_http=True,
    )
    app = create_app(Runtime(settings, engine, session_factory))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A receiver that is not listening yet (connection refused) until `start()`."""
    made = WebhookReceiver()
    yield made
    made.stop()


@pytest.fixture
def deliverer(session_factory: sessionmaker[Session], clock: Clock) -> Iterator[WebhookDeliverer]:
    made = WebhookDeliverer(
        session_factory, (KEY,), "w1", clock=clock, settle=timedelta(0), allow_private=True
    )
    yield made
    made.close()


def add_event(
    sessions: sessionmaker[Session],
    account_id: int,
    kind: str,
    *,
    at: datetime,
    message_id: int | None = None,
    contact_id: int | None = None,
    **data: Any,
) -> int:
    """One `account_events` row, as the engine writes it."""
    with sessions.begin() as session:
        row = AccountEvent(
            account_id=account_id,
            kind=kind,
            message_id=message_id,
            contact_id=contact_id,
            data=data,
            created_at=at,
        )
        session.add(row)
        session.flush()
        return row.id


def register(client: TestClient, headers: dict[str, str], url: str, *kinds: str) -> dict[str, Any]:
    events = list(kinds) or ["message.status", "contact.opted_out"]
    response = client.post("/api/v1/webhooks", headers=headers, json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
