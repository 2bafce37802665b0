"""Failover across real carriers, on SQLite and PostgreSQL: an account's Twilio (first)
answers 500 to every call, so its messages go to its HTTP gateway (second), through the
stored providers (`StoredProviders`, as `sendline worker` builds them). No message may
reach both carriers (issue 13): a 500 is a refusal, never an acceptance."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.config import Settings
from sendline.engine.worker import Worker, WorkerOptions
from sendline.providers.factory import build_directory
from sendline.providers.http_gateway import gateway_settings
from sendline.store.credits import Credits
from sendline.store.engine_models import Message, ProviderConfig
from sendline.store.secret_box import SecretBox
from sendline.store.types import utcnow
from tests.engine.factories import assert_ledger_ok, make_account, make_contact, queue_many
from tests.fakes.gateway_api import API_KEY, WEBHOOK_SECRET, FakeGateway, docs_example
from tests.fakes.twilio_api import FakeTwilio

COUNT = 40
KEY = Fernet.generate_key().decode()


@pytest.fixture
def carriers() -> Iterator[tuple[FakeTwilio, FakeGateway]]:
    with FakeTwilio(seed=7, send_callbacks=False) as twilio:
        gateway = FakeGateway().start()
        try:
            yield twilio, gateway
        finally:
            gateway.stop()


def _configure(
    session: Session, twilio: FakeTwilio, gateway: FakeGateway
) -> tuple[int, dict[str, int]]:
    account = make_account(session, sender_number="+14155550100")
    Credits(session, account.id).purchase(COUNT)
    box = SecretBox([KEY])
    rows = {
        "twilio": ProviderConfig(
            account_id=account.id,
            kind="twilio",
            position=1,
            label="Twilio",
            settings={"account_sid": twilio.account_sid, "from_number": "+14155550100"},
            secret=box.seal({"auth_token": twilio.auth_token}),
            sender_number="+14155550100",
            carrier_confirms_optout=True,
        ),
        "http": ProviderConfig(
            account_id=account.id,
            kind="http",
            position=2,
            label="gateway",
            settings=gateway_settings(docs_example(gateway.url)),
            secret=box.seal({"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}),
            sender_number="+14155550111",
            carrier_confirms_optout=False,
        ),
    }
    session.add_all(rows.values())
    contacts = [make_contact(session, account, f"+1415867{i:04d}") for i in range(COUNT // 4)]
    queue_many(session, account, contacts, COUNT, due_at=utcnow())
    session.commit()
    return account.id, {kind: row.id for kind, row in rows.items()}


def test_it_fails_over_to_the_gateway_while_twilio_answers_500(
    carriers: tuple[FakeTwilio, FakeGateway],
    engine: Engine,
    session: Session,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    twilio, gateway = carriers
    twilio.fault_rate, twilio.fault_kinds = 1.0, ("500",)
    account_id, ids = _configure(session, twilio, gateway)
    settings = Settings(
        data_dir=tmp_path,
        database_url=engine.url.render_as_string(hide_password=False),
        secret_keys=(KEY,),
        twilio_api_url=twilio.url,
    )
    options = WorkerOptions(worker_id="w1", provider_concurrency=4)
    worker = Worker(session_factory, build_directory(settings, session_factory), options)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while _open(session) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.stop()
        thread.join(timeout=30)
    rows = session.execute(select(Message.status, Message.provider)).all()
    session.commit()
    assert sorted(set(rows)) == [("sent", f"http:{ids['http']}")]
    assert len(rows) == COUNT
    assert twilio.messages == [] and twilio.create_calls >= 5  # it was tried, it has none
    assert len(gateway.messages) == COUNT  # each once: none at both, none twice
    assert len({m.reference for m in gateway.messages}) == COUNT
    assert_ledger_ok(session, account_id)


def _open(session: Session) -> int:
    left = session.scalars(
        select(Message.id).where(Message.status.in_(("queued", "sending", "unknown")))
    ).all()
    session.commit()
    return len(left)
