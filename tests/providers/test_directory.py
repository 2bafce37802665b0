"""providers/directory.py on both databases: each account's chain in failover order, the
sandbox for an account with none, refreshing from the table, a row whose secret cannot
be opened (its messages wait, never sent elsewhere), and the real builders."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session, sessionmaker

from sendline.config import Settings
from sendline.providers.base import (
    Accepted,
    OutboundSms,
    Provider,
    ProviderRecord,
    TransientError,
    UnknownOutcome,
)
from sendline.providers.directory import StoredConfig, StoredProviders, Unavailable
from sendline.providers.sandbox import SandboxProvider
from sendline.services.providers import TwilioFields, add_provider, move_provider, remove_provider
from tests.engine.factories import make_account

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"
KEY = Fernet.generate_key().decode()
SMS = OutboundSms(message_id=1, to="+14158675309", sender=None, body="hi", segments=1)


class Built(Provider):
    """What the injected builder makes: it keeps the config it was built from."""

    def __init__(self, config: StoredConfig) -> None:
        self.name = config.name
        self.config = config

    def send(self, sms: OutboundSms) -> Accepted:
        return Accepted(f"{self.name}-{sms.message_id}")

    def lookup(self, sms: OutboundSms) -> ProviderRecord | None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_keys=(KEY,),
        public_url="https://sms.example.com",
    )


def _add(
    sessions: sessionmaker[Session], settings: Settings, account: str, last: int, **options: int
) -> str:
    fields = TwilioFields(SID, TOKEN, f"+1415867{last:04d}")
    return add_provider(sessions, settings, account, fields, **options).provider.name


def _directory(
    sessions: sessionmaker[Session], settings: Settings, clock: Clock | None = None
) -> StoredProviders:
    return StoredProviders(
        sessions,
        settings,
        SandboxProvider(sessions),
        builders={"twilio": lambda config, _settings: Built(config)},
        clock=clock or Clock(),
    )


def test_it_handles_chains_in_position_order_and_the_sandbox_by_default(
    session_factory: sessionmaker[Session], session: Session, settings: Settings
) -> None:
    acme, other = make_account(session, "Acme"), make_account(session, "Other")
    first = _add(session_factory, settings, "Acme", 5310)
    second = _add(session_factory, settings, "Acme", 5311, position=1)
    directory = _directory(session_factory, settings)
    assert [p.name for p in directory.chain(acme.id)] == [second, first]
    assert [p.name for p in directory.chain(other.id)] == ["sandbox"]
    assert [p.name for p in directory.all()] == ["sandbox", second, first]
    assert directory.by_name("sandbox") is directory.default
    built = directory.by_name(first)
    assert isinstance(built, Built) and directory.by_name("twilio:999") is None
    assert built.config.secrets == {"auth_token": TOKEN}
    assert built.config.settings["account_sid"] == SID
    assert built.config.sender_number == "+14158675310" and built.config.account_id == acme.id
    assert built.config.status_callback_url == "https://sms.example.com/webhooks/twilio/status"


def test_it_refreshes_from_the_table_every_few_seconds(
    session_factory: sessionmaker[Session], session: Session, settings: Settings
) -> None:
    acme = make_account(session, "Acme")
    clock = Clock()
    directory = _directory(session_factory, settings, clock)
    assert [p.name for p in directory.chain(acme.id)] == ["sandbox"]
    first = _add(session_factory, settings, "Acme", 5310)
    clock.now += directory.refresh_every - 0.5
    assert [p.name for p in directory.chain(acme.id)] == ["sandbox"]  # not read yet
    clock.now += 1.0
    assert [p.name for p in directory.chain(acme.id)] == [first]
    instance = directory.chain(acme.id)[0]
    second = _add(session_factory, settings, "Acme", 5311, position=1)
    clock.now += directory.refresh_every
    assert [p.name for p in directory.chain(acme.id)] == [second, first]
    assert directory.by_name(first) is instance  # an unchanged row keeps its instance
    move_provider(session_factory, "Acme", first, 1)
    remove_provider(session_factory, "Acme", second)
    directory.refresh()
    assert list(directory.chain(acme.id)) == [instance]
    assert directory.by_name(second) is None
    remove_provider(session_factory, "Acme", first)
    directory.refresh()
    assert [p.name for p in directory.chain(acme.id)] == ["sandbox"]


def test_it_makes_the_messages_of_an_unreadable_provider_wait(
    session_factory: sessionmaker[Session],
    session: Session,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    acme = make_account(session, "Acme")
    readable = _add(session_factory, settings, "Acme", 5310)
    dropped = replace(settings, secret_keys=(Fernet.generate_key().decode(),))
    name = _add(session_factory, dropped, "Acme", 5311)  # sealed with a key since dropped
    with caplog.at_level(logging.INFO, logger="sendline.providers.directory"):
        directory = _directory(session_factory, settings)
        chain = directory.chain(acme.id)
        directory.refresh()  # the same row again: no second log line
    assert [p.name for p in chain] == [readable, name]  # in its place, not skipped
    broken = chain[1]
    assert isinstance(chain[0], Built) and isinstance(broken, Unavailable)
    assert directory.by_name(name) is broken
    with pytest.raises(TransientError) as waiting:
        broken.send(SMS)
    assert waiting.value.code == "provider_unavailable" and waiting.value.retry_after
    with pytest.raises(UnknownOutcome):  # an unknown outcome stays unknown: never resent
        broken.lookup(SMS)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "sendline.providers.directory"]
    assert name in line and "cannot be opened" in line
    assert TOKEN not in line and SID not in line and "5311" not in line
    no_key = _directory(session_factory, replace(settings, secret_keys=()))
    assert [type(p) for p in no_key.chain(acme.id)] == [Unavailable, Unavailable]


def test_it_makes_a_provider_its_builder_refuses_wait(
    session_factory: sessionmaker[Session], session: Session, settings: Settings
) -> None:
    acme = make_account(session, "Acme")
    name = _add(session_factory, settings, "Acme", 5310)

    def refuse(config: StoredConfig, _settings: Settings) -> Provider:
        raise ValueError(config.secrets["auth_token"])  # its text must not be logged

    directory = StoredProviders(
        session_factory, settings, SandboxProvider(session_factory), builders={"twilio": refuse}
    )
    (only,) = directory.chain(acme.id)
    assert isinstance(only, Unavailable) and only.name == name
    assert TOKEN not in only.reason and "ValueError" in only.reason


def test_it_builds_twilio_providers_with_the_agreed_constructor(
    session_factory: sessionmaker[Session], session: Session, settings: Settings
) -> None:
    twilio = pytest.importorskip("sendline.providers.twilio")
    acme = make_account(session, "Acme")
    name = _add(session_factory, settings, "Acme", 5310)
    directory = StoredProviders(session_factory, settings, SandboxProvider(session_factory))
    (built,) = directory.chain(acme.id)
    assert isinstance(built, twilio.TwilioProvider) and built.name == name
