"""The generic HTTP gateway end to end, on SQLite and PostgreSQL: the real Worker sends
through `HttpGatewayProvider` to the fake gateway on loopback, which posts its signed
webhooks back to Sendline's app running under uvicorn."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.app import create_app
from sendline.bootstrap import Runtime
from sendline.config import Settings
from sendline.engine.dispatcher import Dispatcher
from sendline.engine.worker import Worker, WorkerOptions
from sendline.providers.http_gateway import (
    GatewayConfig,
    HttpGatewayProvider,
    gateway_from_row,
    gateway_settings,
)
from sendline.store.engine_models import InboundMessage, Message, ProviderConfig
from sendline.store.models import Account, Contact
from sendline.store.secret_box import SecretBox
from sendline.store.types import utcnow
from tests.engine.factories import (
    SENDER,
    assert_ledger_ok,
    make_world,
    message,
    queue_message,
    reservation_state,
)
from tests.fakes.gateway_api import API_KEY, WEBHOOK_SECRET, FakeGateway, docs_example

TIMEOUT = 0.5  # the provider's; the fake's slow answers take 1.5 s
LATER = timedelta(seconds=61)  # past the default claim lease: reconciliation's turn


@dataclass
class World:
    """One account with one consenting contact, sending through the fake gateway."""

    session: Session
    sessions: sessionmaker[Session]
    account: Account
    contact: Contact
    fake: FakeGateway
    config_id: int
    provider: HttpGatewayProvider
    worker: Worker
    base_url: str

    def hook(self, kind: str, config_id: int | None = None) -> str:
        return f"{self.base_url}/webhooks/http/{config_id or self.config_id}/{kind}"

    def inbound(self, text: str, inbound_id: str = "in-1", **options: object) -> int:
        return self.fake.post_inbound(
            self.hook("inbound"),
            sender=self.contact.phone_e164 or "",
            to=SENDER,
            text=text,
            inbound_id=inbound_id,
            **options,
        )


def _serve(runtime: Runtime, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    return server, thread


@pytest.fixture
def world(
    database_url: str,
    engine: Engine,
    session_factory: sessionmaker[Session],
    session: Session,
    tmp_path: Path,
) -> Iterator[World]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_keys=(Fernet.generate_key().decode(),),
        public_url=base_url,
    )
    fake = FakeGateway().start()
    people = make_world(session)
    row = ProviderConfig(
        account_id=people.account.id,
        kind="http",
        position=1,
        label="fake gateway",
        settings=gateway_settings(docs_example(fake.url)),
        secret=SecretBox(settings.secret_keys).seal(
            {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
        ),
        sender_number=SENDER,
        carrier_confirms_optout=False,
    )
    session.add(row)
    session.commit()
    provider = gateway_from_row(row, settings, timeout=TIMEOUT)
    worker = Worker(session_factory, provider, WorkerOptions(worker_id="w1"))
    server, thread = _serve(Runtime(settings, engine, session_factory), sock)
    yield World(
        session=session,
        sessions=session_factory,
        account=people.account,
        contact=people.contact,
        fake=fake,
        config_id=row.id,
        provider=provider,
        worker=worker,
        base_url=base_url,
    )
    server.should_exit = True
    thread.join(timeout=10)
    fake.stop()
    provider.close()


def _queue(world: World) -> Message:
    """A message due now, created now (a retry's deadline counts from its creation)."""
    now = utcnow()
    return queue_message(world.session, world.account, world.contact, due_at=now, created_at=now)


def _sent(world: World) -> tuple[Message, str]:
    """One message sent through the gateway; with its id at the gateway."""
    queued = _queue(world)
    world.worker.step()
    sent = message(world.session, queued.id)
    assert sent.status == "sent", sent.detail
    [stored] = world.fake.messages
    return sent, stored.id


def test_it_handles_a_message_from_the_queue_to_delivered(world: World) -> None:
    queued = _queue(world)
    world.worker.step()
    sent = message(world.session, queued.id)
    [stored] = world.fake.messages
    assert (sent.status, sent.provider) == ("sent", f"http:{world.config_id}")
    assert sent.provider_id == f"http:{world.config_id}:{stored.id}"
    assert (stored.to, stored.sender, stored.text) == (
        world.contact.phone_e164,
        SENDER,
        queued.body,
    )
    assert (stored.reference, stored.status_url) == (str(queued.id), world.hook("status"))
    assert reservation_state(world.session, world.account.id, sent) == "charged"

    assert world.fake.post_status(world.fake.messages[0], "DELIVRD") == 200
    delivered = message(world.session, queued.id)
    assert delivered.status == "delivered" and delivered.delivered_at is not None
    # R16: a late, repeated or out-of-order report never moves it back.
    assert world.fake.post_status(world.fake.messages[0], "ENROUTE") == 200
    assert world.fake.post_status(world.fake.messages[0], "DELIVRD") == 200
    assert message(world.session, queued.id).status == "delivered"
    assert len(world.fake.messages) == 1
    assert_ledger_ok(world.session, world.account.id)


def test_it_records_an_undelivered_report_with_its_error_code(world: World) -> None:
    sent, _ = _sent(world)
    assert world.fake.post_status(world.fake.messages[0], "UNDELIV", error_code="30003") == 200
    after = message(world.session, sent.id)
    assert (after.status, after.error_code) == ("undelivered", "30003")
    assert_ledger_ok(world.session, world.account.id)


@pytest.mark.parametrize(("fault", "code"), [("429", "rate"), ("500", "internal")])
def test_it_retries_a_transient_refusal_later(world: World, fault: str, code: str) -> None:
    queued = _queue(world)
    world.fake.fail_next(fault)
    before = utcnow()
    world.worker.step()
    retried = message(world.session, queued.id)
    assert (retried.status, retried.error_code, retried.provider_id) == ("queued", code, None)
    if fault == "429":  # Retry-After: 7
        assert retried.due_at is not None and retried.due_at >= before + timedelta(seconds=7)
    assert world.fake.messages == []
    assert reservation_state(world.session, world.account.id, retried) == "open"


def test_it_fails_a_permanent_refusal_and_releases_its_credits(world: World) -> None:
    queued = _queue(world)
    world.fake.fail_next("permanent")
    world.worker.step()
    failed = message(world.session, queued.id)
    assert (failed.status, failed.error_code) == ("failed", "invalid_number")
    assert reservation_state(world.session, world.account.id, failed) == "released"
    world.worker.step()
    assert world.fake.requests == 1  # never tried again
    assert_ledger_ok(world.session, world.account.id)


@pytest.mark.parametrize("fault", ["slow", "drop"])
def test_it_reconciles_a_message_the_gateway_stored_without_answering(
    world: World, fault: str
) -> None:
    """A timeout (or a dropped connection) after the gateway stored the message: unknown,
    then found by lookup; exactly one message at the gateway, never resent."""
    queued = _queue(world)
    world.fake.fail_next(fault)
    world.worker.step()
    assert message(world.session, queued.id).status == "unknown"
    assert len(world.fake.messages) == 1

    assert world.worker.dispatcher.reconcile(now=utcnow() + LATER) == 1
    found = message(world.session, queued.id)
    assert found.status == "sent"
    assert found.provider_id == f"http:{world.config_id}:{world.fake.messages[0].id}"
    world.worker.step()
    assert world.fake.requests == 1 and len(world.fake.messages) == 1
    assert world.fake.post_status(world.fake.messages[0], "DELIVRD") == 200
    assert message(world.session, queued.id).status == "delivered"
    assert_ledger_ok(world.session, world.account.id)


def test_it_settles_an_unknown_message_by_its_status_webhook_without_a_lookup(world: World) -> None:
    data = yaml.safe_load(docs_example(world.fake.url))
    data.pop("lookup")
    blind = HttpGatewayProvider(
        world.provider.name,
        config=GatewayConfig.parse(yaml.safe_dump(data)),
        secrets={"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET},
        status_callback_url=world.hook("status"),
        timeout=TIMEOUT,
    )
    queued = _queue(world)
    world.fake.fail_next("drop")
    world.worker.step()
    reconciler = Dispatcher(world.sessions, blind, worker_id="w2")
    assert reconciler.reconcile(now=utcnow() + LATER) == 0
    assert message(world.session, queued.id).status == "unknown"
    assert reconciler.dispatch_due() == 0
    assert world.fake.requests == 1 and len(world.fake.messages) == 1
    blind.close()
    # Its status webhook settles it, found by the reference it echoes.
    assert world.fake.post_status(world.fake.messages[0], "DELIVRD") == 200
    settled = message(world.session, queued.id)
    assert settled.status == "delivered"
    assert settled.provider_id == f"http:{world.config_id}:{world.fake.messages[0].id}"
    assert reservation_state(world.session, world.account.id, settled) == "charged"


# -- webhooks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "options"),
    [
        ("forged", {"secret": "not-the-secret"}),
        ("unsigned", {"signed": False}),
        ("replayed", {"timestamp": time.time() - 3600}),
        ("garbage", {"signature": "zz" * 32}),
    ],
)
def test_it_refuses_a_status_webhook_it_cannot_verify(
    world: World, case: str, options: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    sent, _ = _sent(world)
    caplog.set_level(logging.WARNING, logger="sendline.webhooks")
    assert world.fake.post_status(world.fake.messages[0], "DELIVRD", **options) == 403, case
    after = message(world.session, sent.id)
    assert (after.status, after.delivered_at) == ("sent", None)
    refusals = [r for r in caplog.records if r.name == "sendline.webhooks"]
    assert len(refusals) == 1
    line = refusals[0].getMessage()
    assert WEBHOOK_SECRET not in line and "not-the-secret" not in line
    assert str(world.contact.phone_e164) not in line


def test_it_refuses_a_forged_stop_and_changes_nothing(world: World) -> None:
    assert world.inbound("STOP", secret="not-the-secret") == 403
    assert world.inbound("STOP", signed=False) == 403
    assert _consent(world) == "opted_in"
    assert _count(world, InboundMessage) == 0 and _count(world, Message) == 0


def test_it_answers_4xx_to_bad_requests_and_changes_nothing(world: World) -> None:
    sent, _ = _sent(world)
    fake = world.fake
    huge = b'{"id": "' + b"x" * (64 * 1024) + b'"}'
    assert fake.post(world.hook("status"), huge) == 413
    chunked = httpx.post(world.hook("status"), content=iter([b"x" * 1024] * 80), timeout=30)
    assert chunked.status_code == 413  # no Content-Length: cut off while reading
    assert fake.post(world.hook("status"), b"{not json") == 400
    assert fake.post(world.hook("status"), b'{"status": "DELIVRD"}') == 400  # no id
    assert fake.post(world.hook("status", world.config_id + 1000), b"{}") == 404
    assert fake.post(world.hook("inbound"), b'{"from": "+14158675309"}') == 400  # no text
    unknown = b'{"id": "gw-999", "status": "DELIVRD"}'
    assert fake.post(world.hook("status"), unknown) == 404  # a gateway retries later
    assert fake.post(world.hook("status"), b'{"id": "gw-1", "status": "ODD"}') == 200  # ignored
    assert message(world.session, sent.id).status == "sent"
    assert _count(world, InboundMessage) == 0


def test_it_opts_a_contact_out_on_an_inbound_stop(world: World) -> None:
    assert world.inbound("STOP") == 200
    assert _consent(world) == "opted_out"
    replies = _replies(world)
    assert len(replies) == 1 and "unsubscribed" in replies[0]
    assert world.inbound("STOP") == 200  # the gateway's retry: handled once
    assert _count(world, InboundMessage) == 1 and len(_replies(world)) == 1
    stored = world.session.scalars(select(InboundMessage)).one()
    world.session.commit()
    assert stored.provider_id == f"http:{world.config_id}:in-1"


def test_it_leaves_the_confirmation_to_a_carrier_that_sends_it(world: World) -> None:
    world.session.execute(
        update(ProviderConfig)
        .where(ProviderConfig.id == world.config_id)
        .values(carrier_confirms_optout=True)
    )
    world.session.commit()
    assert world.inbound("STOP") == 200
    assert _consent(world) == "opted_out"
    assert _replies(world) == []  # the carrier's confirmation is the one


def _consent(world: World) -> str:
    world.session.expire_all()
    value = world.session.scalar(select(Contact.sms_consent).where(Contact.id == world.contact.id))
    world.session.commit()
    return str(value)


def _replies(world: World) -> list[str]:
    bodies = world.session.scalars(select(Message.body).where(Message.kind == "reply")).all()
    world.session.commit()
    return [str(body) for body in bodies]


def _count(world: World, model: type[Message] | type[InboundMessage]) -> int:
    count = world.session.scalar(select(func.count()).select_from(model))
    world.session.commit()
    return int(count or 0)
