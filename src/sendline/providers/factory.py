"""Which providers a process talks to: the one wiring point for `SENDLINE_PROVIDER`
(the default) and the accounts' own providers (`build_directory`)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from sendline.config import Settings
from sendline.errors import ConfigError
from sendline.providers.base import Provider, ProviderDirectory
from sendline.providers.directory import StoredProviders
from sendline.providers.sandbox import SandboxProvider


def build_provider(settings: Settings, session_factory: sessionmaker[Session]) -> Provider:
    if settings.provider == "sandbox":
        return SandboxProvider(
            session_factory,
            failure_rate=settings.sandbox_failure_rate,
            mps=settings.sandbox_mps,
        )
    raise ConfigError(f"SENDLINE_PROVIDER={settings.provider} is not available yet; use sandbox")


def build_directory(
    settings: Settings, session_factory: sessionmaker[Session]
) -> ProviderDirectory:
    """Every account's providers (`provider_configs`), the settings' provider for the
    accounts without any: what a worker's dispatcher sends through."""
    return StoredProviders(session_factory, settings, build_provider(settings, session_factory))
