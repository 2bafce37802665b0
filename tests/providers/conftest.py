"""Twilio end to end: the fake Twilio API, a live `sendline serve` app for its
callbacks, an account whose Twilio config is stored sealed, and the worker that sends.

`twilio_site` is the one fixture that wires a Worker to the Twilio provider: when the
worker takes a ProviderDirectory, only `TwilioSite.worker` changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendline.bootstrap import Runtime
from sendline.config import Settings
from sendline.engine.worker import Worker, WorkerOptions
from sendline.providers.twilio import (
    INBOUND_PATH,
    STATUS_PATH,
    TwilioProvider,
    build_twilio,
)
from sendline.store.engine_models import ProviderConfig
from sendline.store.models import Account, Contact
from sendline.store.secret_box import SecretBox
from tests.engine.factories import make_account, make_contact
from tests.fakes.live_app import LiveApp
from tests.fakes.twilio_api import FakeTwilio

TWILIO_NUMBER = "+14155550100"
CONTACT_PHONE = "+14158675309"
SECRET_KEY = Fernet.generate_key().decode()


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(seed=13) as fake:
        yield fake


@dataclass
class TwilioSite:
    """Everything a Twilio test touches."""

    fake: FakeTwilio
    app_url: str
    sessions: sessionmaker[Session]
    account: Account
    contact: Contact
    config_id: int
    provider: TwilioProvider

    @property
    def status_url(self) -> str:
        return f"{self.app_url}{STATUS_PATH}"

    @property
    def inbound_url(self) -> str:
        return f"{self.app_url}{INBOUND_PATH}"

    def worker(self, worker_id: str = "w1") -> Worker:
        # The one place a worker meets the provider (see the module's docstring).
        options = WorkerOptions(worker_id=worker_id, lease=timedelta(seconds=60))
        return Worker(self.sessions, self.provider, options)


def store_twilio_config(
    session: Session,
    account: Account,
    *,
    account_sid: str,
    auth_token: str,
    number: str = TWILIO_NUMBER,
    carrier_confirms_optout: bool = False,
    position: int = 1,
) -> ProviderConfig:
    """A `provider_configs` row as `sendline providers add ... twilio` stores it."""
    row = ProviderConfig(
        account_id=account.id,
        kind="twilio",
        position=position,
        label="Twilio",
        settings={"account_sid": account_sid, "from_number": number},
        secret=SecretBox([SECRET_KEY]).seal({"auth_token": auth_token}),
        sender_number=number,
        carrier_confirms_optout=carrier_confirms_optout,
    )
    session.add(row)
    session.commit()
    return row


def make_site(
    fake: FakeTwilio,
    engine: Engine,
    session: Session,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    *,
    carrier_confirms_optout: bool = False,
) -> tuple[TwilioSite, LiveApp]:
    live = LiveApp()
    settings = Settings(
        data_dir=tmp_path,
        database_url=engine.url.render_as_string(hide_password=False),
        secret_keys=(SECRET_KEY,),
        public_url=live.url,
        twilio_api_url=fake.url,
    )
    live.start(Runtime(settings, engine, sessions))
    account = make_account(session, sender_number=TWILIO_NUMBER)
    contact = make_contact(session, account, CONTACT_PHONE)
    row = store_twilio_config(
        session,
        account,
        account_sid=fake.account_sid,
        auth_token=fake.auth_token,
        carrier_confirms_optout=carrier_confirms_optout,
    )
    secrets = SecretBox(settings.secret_keys).open(row.secret or "")
    provider = build_twilio(
        row.id,
        row.settings,
        secrets,
        api_url=settings.twilio_api_url,
        public_url=settings.public_url,
        timeout=2.0,
    )
    site = TwilioSite(fake, live.url, sessions, account, contact, row.id, provider)
    return site, live


@pytest.fixture
def twilio_site(
    fake_twilio: FakeTwilio,
    engine: Engine,
    session: Session,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> Iterator[TwilioSite]:
    site, live = make_site(fake_twilio, engine, session, session_factory, tmp_path)
    try:
        yield site
    finally:
        fake_twilio.stop()  # no callback left in flight to a stopped app
        live.stop()
        site.provider.close()
