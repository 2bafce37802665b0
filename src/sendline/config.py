"""Settings from the environment (`SENDLINE_*`): one strict reader that fails fast.

Every setting has one variable. A bad value raises `ConfigError` naming the variable and
the value; so does an unknown `SENDLINE_*` variable, which is almost always a typo
(`SENDLINE_DATABSE_URL`) that would otherwise silently fall back to a default. Later
modules that need a setting add its name to `KNOWN_VARIABLES` and a field to `Settings`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from sendline.errors import ConfigError

PREFIX = "SENDLINE_"

KNOWN_VARIABLES: set[str] = {
    "SENDLINE_DATA_DIR",
    "SENDLINE_DATABASE_URL",
    "SENDLINE_SHORTENERS_FILE",
    "SENDLINE_PROVIDER",
    "SENDLINE_HOST",
    "SENDLINE_PORT",
    "SENDLINE_LOG_LEVEL",
    "SENDLINE_SANDBOX_FAILURE_RATE",
    "SENDLINE_SANDBOX_MPS",
    "SENDLINE_SENDER_MPS",
    "SENDLINE_ACCOUNT_MPS",
    "SENDLINE_CLAIM_LEASE",
    "SENDLINE_SECRET_KEY",
    "SENDLINE_PUBLIC_URL",
    "SENDLINE_TWILIO_API_URL",
    "SENDLINE_PROVIDER_CONCURRENCY",
    "SENDLINE_UNCONFIRMED_AFTER",
    "SENDLINE_API_RATE",
    "SENDLINE_API_BURST",
    "SENDLINE_CORS_ORIGINS",
    "SENDLINE_MAX_UPLOAD_MB",
    "SENDLINE_WEBHOOKS_ALLOW_HTTP",
}

PROVIDERS = frozenset({"sandbox", "twilio"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_DATA_DIR = "./var"
# Seconds. Under 2 a worker would put back most of a batch (it stops calling at half
# its lease); over a day, a claim could outlive the retry deadline of its message.
CLAIM_LEASE_RANGE = (2.0, 86_400.0)
SQLITE_FILE_NAME = "sendline.db"
TWILIO_API_URL = "https://api.twilio.com"
# Requests in flight per worker to an HTTP provider: a carrier answers in 50-500 ms, so
# one call at a time would cap a worker at a few messages a second.
PROVIDER_CONCURRENCY_RANGE = (1, 500)
# Seconds after which a message whose provider call had no known outcome, and that no
# lookup or callback has settled, ends failed ("unconfirmed") and its credits come back.
UNCONFIRMED_RANGE = (60.0, 7 * 86_400.0)

# Requests a second per API key (per serving process), and how many may come at once.
API_RATE_RANGE = (0.1, 100_000.0)
API_BURST_RANGE = (1, 1_000_000)
# Megabytes of a CSV uploaded to import contacts (the file, not the multipart around it).
MAX_UPLOAD_RANGE = (1, 4096)

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    shorteners_file: Path | None = None
    provider: str = "sandbox"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    # The sandbox carrier: the fraction of messages it fails with real provider error
    # codes, and the messages per second it accepts before answering "rate limited".
    sandbox_failure_rate: float = 0.0
    sandbox_mps: float | None = None
    # What workers pace themselves to, counted in segments and shared by every worker
    # through the database: per sender number (the carrier's limit for that number) and
    # per account. None sends as fast as the provider takes them.
    sender_mps: float | None = None
    account_mps: float | None = None
    # Seconds a worker's claim on a message lasts: after it, another worker looks the
    # message up at the provider (never resends it). A worker that died is found out
    # sooner by its heartbeat; this bounds a live but stuck one.
    claim_lease: float = 60.0
    # Fernet keys (urlsafe base64, 32 bytes) for provider secrets at rest: the first
    # encrypts, every one decrypts, so a key is rotated by putting the new one first.
    secret_keys: tuple[str, ...] = ()
    # This Sendline as the internet sees it: webhook URLs (status callbacks, inbound
    # texts) are built from it, and Twilio signs the URL it called.
    public_url: str | None = None
    twilio_api_url: str = TWILIO_API_URL
    provider_concurrency: int = 32
    unconfirmed_after: float = 6 * 3600.0
    api_rate: float = 50.0
    api_burst: int = 100
    # Browser origins allowed to call /api/v1 from their pages. None by default: the API
    # is for servers, and a page calling it would have to hold an API key.
    cors_origins: tuple[str, ...] = ()
    max_upload_mb: int = 50
    # Outbound webhooks go to https:// URLs only; with this, http:// to localhost,
    # 127.0.0.1 or [::1] too (tests, a receiver on the same machine).
    webhooks_allow_http: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    """Read and check every `SENDLINE_*` variable; raise ConfigError on the first bad one."""
    unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in KNOWN_VARIABLES)
    if unknown:
        known = ", ".join(sorted(KNOWN_VARIABLES))
        raise ConfigError(f"unknown setting {unknown[0]} (known settings: {known})")
    data_dir = _read(env, "SENDLINE_DATA_DIR", _path, Path(DEFAULT_DATA_DIR))
    data_dir = data_dir.expanduser().absolute()
    default_url = f"sqlite:///{data_dir / SQLITE_FILE_NAME}"
    return Settings(
        data_dir=data_dir,
        database_url=_read(env, "SENDLINE_DATABASE_URL", database_url, default_url),
        shorteners_file=_read(env, "SENDLINE_SHORTENERS_FILE", _existing_file, None),
        provider=_read(env, "SENDLINE_PROVIDER", _provider, "sandbox"),
        host=_read(env, "SENDLINE_HOST", _host, "127.0.0.1"),
        port=_read(env, "SENDLINE_PORT", _port, 8000),
        log_level=_read(env, "SENDLINE_LOG_LEVEL", _log_level, "INFO"),
        sandbox_failure_rate=_read(env, "SENDLINE_SANDBOX_FAILURE_RATE", _fraction, 0.0),
        sandbox_mps=_read(env, "SENDLINE_SANDBOX_MPS", _positive_or_none, None),
        sender_mps=_read(env, "SENDLINE_SENDER_MPS", _positive_or_none, None),
        account_mps=_read(env, "SENDLINE_ACCOUNT_MPS", _positive_or_none, None),
        claim_lease=_read(env, "SENDLINE_CLAIM_LEASE", _lease, 60.0),
        secret_keys=_read(env, "SENDLINE_SECRET_KEY", _secret_keys, ()),
        public_url=_read(env, "SENDLINE_PUBLIC_URL", _http_url, None),
        twilio_api_url=_read(env, "SENDLINE_TWILIO_API_URL", _http_url, TWILIO_API_URL),
        provider_concurrency=_read(env, "SENDLINE_PROVIDER_CONCURRENCY", _concurrency, 32),
        unconfirmed_after=_read(env, "SENDLINE_UNCONFIRMED_AFTER", _unconfirmed, 6 * 3600.0),
        api_rate=_read(env, "SENDLINE_API_RATE", _api_rate, 50.0),
        api_burst=_read(env, "SENDLINE_API_BURST", _api_burst, 100),
        cors_origins=_read(env, "SENDLINE_CORS_ORIGINS", _origins, ()),
        max_upload_mb=_read(env, "SENDLINE_MAX_UPLOAD_MB", _max_upload, 50),
        webhooks_allow_http=_read(env, "SENDLINE_WEBHOOKS_ALLOW_HTTP", _boolean, False),
    )


def _read(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    if name not in env:
        return default
    raw = env[name]
    if not raw.strip():
        raise ConfigError(f"{name} is set but empty; unset it to use the default")
    try:
        return parse(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not valid: {exc}") from None


def database_url(raw: str) -> str:
    """Accept sqlite and PostgreSQL URLs; PostgreSQL always goes through psycopg 3."""
    scheme, sep, rest = raw.partition("://")
    if not sep or not rest:
        raise ValueError("expected a URL such as sqlite:///path/to/file.db or postgresql://...")
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    if scheme in ("sqlite", "sqlite+pysqlite"):
        if not rest.startswith("/") or rest == "/":
            raise ValueError("a SQLite URL needs a file path: sqlite:///path/to/file.db")
        return f"sqlite://{rest}"
    raise ValueError(f"unsupported database {scheme!r}; use sqlite:/// or postgresql://")


def _path(raw: str) -> Path:
    return Path(raw)


def _existing_file(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ValueError("no such file")
    return path


def _provider(raw: str) -> str:
    if raw not in PROVIDERS:
        raise ValueError(f"expected one of {', '.join(sorted(PROVIDERS))}")
    return raw


def _host(raw: str) -> str:
    if any(c.isspace() for c in raw) or "/" in raw:
        raise ValueError("expected a host name or IP address")
    return raw


def _port(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError("expected a port number 1-65535")
    port = int(raw)
    if not 1 <= port <= 65535:
        raise ValueError("expected a port number 1-65535")
    return port


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return level


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("expected a fraction between 0 and 1")
    return value


def _positive_or_none(raw: str) -> float | None:
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError("expected a number >= 0 (0 means unlimited)")
    return value or None


def _lease(raw: str) -> float:
    low, high = CLAIM_LEASE_RANGE
    value = float(raw)
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"expected a number of seconds from {low:g} to {high:g}")
    return value


def _secret_keys(raw: str) -> tuple[str, ...]:
    """Comma-separated Fernet keys, newest first (see `store.secret_box`)."""
    from sendline.store.secret_box import check_key  # noqa: PLC0415 - cryptography is heavy

    keys = tuple(part.strip() for part in raw.split(","))
    for key in keys:
        check_key(key)
    return keys


def _http_url(raw: str) -> str:
    """An absolute http(s) URL without a trailing slash (paths are appended to it)."""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("must be an absolute http(s) URL such as https://sms.example.com")
    return raw.rstrip("/")


def _concurrency(raw: str) -> int:
    low, high = PROVIDER_CONCURRENCY_RANGE
    value = int(raw) if raw.isdigit() else -1
    if not low <= value <= high:
        raise ValueError(f"must be a whole number from {low} to {high}")
    return value


def _unconfirmed(raw: str) -> float:
    low, high = UNCONFIRMED_RANGE
    value = float(raw)
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"must be seconds from {low:.0f} to {high:.0f}")
    return value


def _api_rate(raw: str) -> float:
    low, high = API_RATE_RANGE
    value = float(raw)
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"must be requests a second from {low:g} to {high:g}")
    return value


def _api_burst(raw: str) -> int:
    low, high = API_BURST_RANGE
    value = int(raw) if raw.isdigit() else -1
    if not low <= value <= high:
        raise ValueError(f"must be a whole number from {low} to {high}")
    return value


def _max_upload(raw: str) -> int:
    low, high = MAX_UPLOAD_RANGE
    value = int(raw) if raw.isdigit() else -1
    if not low <= value <= high:
        raise ValueError(f"must be whole megabytes from {low} to {high}")
    return value


def _origins(raw: str) -> tuple[str, ...]:
    """Comma-separated origins (`https://shop.example.com`), each scheme and host only."""
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ValueError(f"{origin!r} is not an origin such as https://shop.example.com")
    return origins


def _boolean(raw: str) -> bool:
    value = raw.lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("expected true or false")
    return value in ("true", "1", "yes")
