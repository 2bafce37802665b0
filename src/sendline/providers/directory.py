"""The providers each account sends through, read from `provider_configs`.

`StoredProviders` is the `ProviderDirectory` a worker hands the dispatcher:
- `chain(account_id)`: the account's providers in failover order (`position`), or the
  default provider (the sandbox) when it has none;
- `by_name("twilio:7")`: the provider a message was handed to (only it can reconcile
  the message, R17); `all()`: every provider known now, the default first (polled for
  receipts).

Instances are built lazily, on the first refresh that sees their row, by a builder per
kind (`BUILDERS`; tests inject their own), with the row's secrets opened by `SecretBox`
and their status-callback URL built from SENDLINE_PUBLIC_URL. The table is read again
at most every `refresh_every` seconds (5 by default), on the next call after that: a
provider added, moved or removed while a worker runs is used (or dropped) within
seconds, without a restart. A row that did not change keeps its instance (and its
connections); one whose settings or sealed secret changed is built anew.

A row whose secret cannot be opened (its key was dropped from SENDLINE_SECRET_KEY, or
none is set) or that its builder refuses is logged once, masked, and keeps its place in
the chain as `Unavailable`, which fails every call transiently
(`provider_unavailable`, recorded on each message). That is the safest of the choices:
- falling back to the sandbox would "send" real texts to no one and mark them sent;
- dropping the row would hand its messages to the next provider with no trace, or, for
  an account with no other, to the sandbox;
- in its place, an account with no other provider has its messages wait (retried with
  backoff until a worker restarts with the key), and one with a later provider fails over to it the
  way the account asked for when a provider fails, the reason on every message.
A message whose outcome is unknown stays with it (`lookup` cannot answer, so it stays
`unknown`) until it can be reconciled: never sent twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from sendline.config import Settings
from sendline.errors import SendlineError
from sendline.providers.base import (
    Accepted,
    OutboundSms,
    Provider,
    ProviderRecord,
    TransientError,
    UnknownOutcome,
)
from sendline.providers.http_gateway import HttpGatewayProvider, config_of
from sendline.store.engine_models import ProviderConfig
from sendline.store.provider_configs import provider_name
from sendline.store.secret_box import SecretBox

log = logging.getLogger(__name__)

REFRESH_EVERY = 5.0  # seconds between reads of provider_configs (per directory)
# What an unavailable provider asks the dispatcher to wait before trying again: a key
# put back takes a restart (or a re-seal), not a second.
UNAVAILABLE_RETRY = 60.0


@dataclass(frozen=True)
class StoredConfig:
    """A provider_configs row as a builder gets it: the secrets open, the URLs built."""

    id: int
    name: str  # "twilio:7"
    kind: str
    account_id: int
    settings: Mapping[str, Any]
    secrets: Mapping[str, str]
    sender_number: str | None
    status_callback_url: str | None


Builder = Callable[[StoredConfig, Settings], Provider]


def build_twilio(config: StoredConfig, settings: Settings) -> Provider:
    from sendline.providers import twilio  # noqa: PLC0415 - the SDK loads only when used

    return twilio.build_twilio(
        config.id,
        config.settings,
        config.secrets,
        api_url=settings.twilio_api_url,
        public_url=settings.public_url,
        sender_number=config.sender_number,
    )


def build_http(config: StoredConfig, settings: Settings) -> Provider:
    del settings  # a gateway's URL is in its own config
    return HttpGatewayProvider(
        config.name,
        config=config_of(config.settings),
        secrets=config.secrets,
        status_callback_url=config.status_callback_url,
    )


BUILDERS: Mapping[str, Builder] = {"twilio": build_twilio, "http": build_http}


def status_callback_url(settings: Settings, kind: str, row_id: int) -> str | None:
    """Where a provider posts delivery receipts; None without SENDLINE_PUBLIC_URL."""
    if settings.public_url is None:
        return None
    if kind == "twilio":
        return f"{settings.public_url}/webhooks/twilio/status"
    return f"{settings.public_url}/webhooks/{kind}/{row_id}/status"


class Unavailable(Provider):
    """A configured provider that cannot be built: its messages wait (see the module)."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def send(self, sms: OutboundSms) -> Accepted:
        raise TransientError("provider_unavailable", self.reason, retry_after=UNAVAILABLE_RETRY)

    def lookup(self, sms: OutboundSms) -> ProviderRecord | None:
        raise UnknownOutcome("provider_unavailable", self.reason)


@dataclass(frozen=True)
class _Snapshot:
    chains: Mapping[int, tuple[Provider, ...]]
    named: Mapping[str, Provider]
    every: tuple[Provider, ...]


_Fingerprint = tuple[str, str, str | None]


class StoredProviders:
    """The `ProviderDirectory` of the provider_configs table (see the module).

    `default` serves every account without a row (the sandbox); `builders` maps a kind
    to what builds its instances (default `BUILDERS`); `clock` is monotonic seconds."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        default: Provider,
        *,
        builders: Mapping[str, Builder] | None = None,
        refresh_every: float = REFRESH_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.default = default
        self.builders = dict(BUILDERS if builders is None else builders)
        self.refresh_every = refresh_every
        self._clock = clock
        self._box = SecretBox(settings.secret_keys)
        self._lock = threading.Lock()
        self._built: dict[int, tuple[_Fingerprint, Provider]] = {}
        self._snapshot = _Snapshot({}, {default.name: default}, (default,))
        self._due = -float("inf")

    def chain(self, account_id: int) -> Sequence[Provider]:
        return self._current().chains.get(account_id, (self.default,))

    def by_name(self, name: str) -> Provider | None:
        return self._current().named.get(name)

    def all(self) -> Sequence[Provider]:
        return self._current().every

    def refresh(self) -> None:
        """Read the table now (a worker's change notice, or a test)."""
        with self._lock:
            self._load()

    def _current(self) -> _Snapshot:
        # One float comparison on the hot path; the read happens under the lock, once.
        if self._clock() >= self._due:
            with self._lock:
                if self._clock() >= self._due:
                    self._load()
        return self._snapshot

    def _load(self) -> None:
        self._due = self._clock() + self.refresh_every
        try:
            with self.sessions() as session:
                rows = (
                    session.execute(
                        select(ProviderConfig).order_by(
                            ProviderConfig.account_id, ProviderConfig.position
                        )
                    )
                    .scalars()
                    .all()
                )
                configs = [(row, _fingerprint(row)) for row in rows]
                session.expunge_all()
        except SQLAlchemyError as exc:  # keep sending through what was known
            log.warning("provider directory: cannot read provider_configs (%s)", type(exc).__name__)
            return
        built: dict[int, tuple[_Fingerprint, Provider]] = {}
        chains: dict[int, list[Provider]] = {}
        for row, fingerprint in configs:
            known = self._built.get(row.id)
            provider = known[1] if known and known[0] == fingerprint else self._build(row)
            built[row.id] = (fingerprint, provider)
            chains.setdefault(row.account_id, []).append(provider)
        self._built = built
        every = (self.default, *(provider for _, provider in built.values()))
        self._snapshot = _Snapshot(
            {account: tuple(chain) for account, chain in chains.items()},
            {provider.name: provider for provider in every},
            every,
        )

    def _build(self, row: ProviderConfig) -> Provider:
        name = provider_name(row.kind, row.id)
        try:
            secrets = self._box.open(row.secret) if row.secret is not None else {}
            builder = self.builders.get(row.kind)
            if builder is None:
                raise SendlineError(f"no builder for providers of kind {row.kind!r}")
            config = StoredConfig(
                id=row.id,
                name=name,
                kind=row.kind,
                account_id=row.account_id,
                settings=dict(row.settings or {}),
                secrets=secrets,
                sender_number=row.sender_number,
                status_callback_url=status_callback_url(self.settings, row.kind, row.id),
            )
            return builder(config, self.settings)
        except Exception as exc:  # noqa: BLE001 - one bad row must not stop every account
            # Our errors say what is wrong without secrets; any other is named by type
            # only, as its text might quote what it was given.
            why = exc.message if isinstance(exc, SendlineError) else type(exc).__name__
            log.error(
                "provider %s (account %d) is unavailable, its messages wait: %s",
                name,
                row.account_id,
                why,
            )
            return Unavailable(name, f"provider {name} is unavailable: {why}")


def _fingerprint(row: ProviderConfig) -> _Fingerprint:
    """What an instance is built from: a row whose fingerprint is unchanged keeps it."""
    return (row.kind, json.dumps(row.settings, sort_keys=True, default=str), row.secret)
