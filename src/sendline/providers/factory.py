"""Which provider a process talks to: the one wiring point for `SENDLINE_PROVIDER`."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from sendline.config import Settings
from sendline.errors import ConfigError
from sendline.providers.base import Provider
from sendline.providers.sandbox import SandboxProvider


def build_provider(settings: Settings, session_factory: sessionmaker[Session]) -> Provider:
    if settings.provider == "sandbox":
        return SandboxProvider(
            session_factory,
            failure_rate=settings.sandbox_failure_rate,
            mps=settings.sandbox_mps,
        )
    raise ConfigError(f"SENDLINE_PROVIDER={settings.provider} is not available yet; use sandbox")
