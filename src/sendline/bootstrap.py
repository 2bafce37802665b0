"""What every entry point builds first: the settings, the database, the providers.

The CLI's commands (`cli/db.py`'s `open_store`), the long-running processes
(`sendline serve`, `sendline worker`) and the HTTP app all start here, so they read the
same settings the same way, refuse a database whose schema is behind in one place, and
give the worker the same shortener list the CLI checks messages against (R10).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendline.config import Settings, load_settings
from sendline.engine.worker import WorkerOptions, default_worker_id
from sendline.providers.base import Provider, ProviderDirectory
from sendline.providers.factory import build_directory, build_provider
from sendline.shortener_files import shorteners
from sendline.sms.links import ShortenerList
from sendline.store.db import open_engine, session_factory, sole_worker


@dataclass(frozen=True)
class Runtime:
    """A process's wiring: its settings and its database (engine, session factory)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    def provider(self) -> Provider:
        """The provider the settings name (`SENDLINE_PROVIDER`)."""
        return build_provider(self.settings, self.sessions)

    def providers(self) -> ProviderDirectory:
        """Which provider sends each account's messages: what a worker is given.

        The providers accounts configure (`sendline providers`, re-read every few
        seconds), with the settings' provider (the sandbox) for an account that has
        none."""
        return build_directory(self.settings, self.sessions)

    def shorteners(self) -> ShortenerList:
        """R10: the packaged public-shortener list plus the operator's own."""
        return operator_shorteners(self.settings)

    def worker_options(self, worker_id: str | None = None, batch_size: int = 200) -> WorkerOptions:
        """The worker as the settings configure it, embedded or standalone alike (this
        reads the operator's shortener file)."""
        return WorkerOptions(
            worker_id=worker_id or default_worker_id(),
            batch_size=batch_size,
            lease=timedelta(seconds=self.settings.claim_lease),
            shorteners=self.shorteners(),
            sender_mps=self.settings.sender_mps,
            account_mps=self.settings.account_mps,
            provider_concurrency=self.settings.provider_concurrency,
            unconfirmed_after=self.settings.unconfirmed_after,
            secret_keys=self.settings.secret_keys,
            webhooks_allow_private=self.settings.webhooks_allow_http,
        )

    @contextmanager
    def worker_slot(self) -> Iterator[None]:
        """Held while this process runs a worker: refuses a second one on SQLite."""
        with sole_worker(self.settings.database_url):
            yield

    def close(self) -> None:
        self.engine.dispose()


def start(*, require_current: bool = True, env: Mapping[str, str] = os.environ) -> Runtime:
    """Read the settings and open the database, refusing one whose schema is behind
    (unless `require_current` is False: `sendline db upgrade` itself)."""
    settings = load_settings(env)
    engine = open_engine(settings.database_url, require_current=require_current)
    return Runtime(settings, engine, session_factory(engine))


@contextmanager
def opened(*, require_current: bool = True) -> Iterator[Runtime]:
    """`start`, closed afterwards."""
    runtime = start(require_current=require_current)
    try:
        yield runtime
    finally:
        runtime.close()


def operator_shorteners(settings: Settings | None = None) -> ShortenerList:
    """R10: the packaged public-shortener list plus the operator's own
    (SENDLINE_SHORTENERS_FILE), as the worker sees it."""
    return shorteners((settings or load_settings()).shorteners_file)
