"""A running worker delivers outbound webhooks on its own thread, and stops doing so
when it stops."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy.orm import Session, sessionmaker

from sendline.config import Settings
from sendline.engine.worker import Worker, WorkerOptions
from sendline.providers.sandbox import SandboxProvider
from sendline.services.webhooks import create_webhook
from tests.api.webhook_fixtures import add_event
from tests.engine.factories import make_account
from tests.fakes.webhook_receiver import WebhookReceiver

KEY = Fernet.generate_key().decode()


def test_it_delivers_webhooks_while_the_worker_runs(
    database_url: str, tmp_path: Path, session: Session, session_factory: sessionmaker[Session]
) -> None:
    account = make_account(session, "Acme")
    session.commit()
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, secret_keys=(KEY,), webhooks_allow_http=True
    )
    receiver = WebhookReceiver()
    created = create_webhook(session_factory, settings, account.id, receiver.url, ["message.held"])
    receiver.secret = created.secret
    receiver.start()
    settled = datetime.now(UTC) - timedelta(seconds=5)
    event = add_event(session_factory, account.id, "message.held", at=settled, reason="quiet")
    options = WorkerOptions(worker_id="w1", secret_keys=(KEY,), webhooks_allow_private=True)
    worker = Worker(session_factory, SandboxProvider(session_factory), options)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not receiver.delivered and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.delivered == [event]
    finally:
        worker.stop()
        thread.join(timeout=30)
        receiver.stop()
    assert not thread.is_alive()
