"""API keys: create (the full key is shown once), list, revoke, and authenticate.

A key is `sl_live_` + 32 random URL-safe characters. Only its SHA-256 is stored, so a
leaked database does not leak working keys; the first characters (`prefix`) are kept
to tell keys apart in lists. Authentication looks the hash up (an index, not a scan)
and then compares it in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import InvalidInput, NotFound, SendlineError
from sendline.services import AccountRef, resolve_account
from sendline.store.engine_models import ApiKey
from sendline.store.ids import is_id, parse_id
from sendline.store.keyset import newest_first

KEY_PREFIX = "sl_live_"
SHOWN_CHARS = len(KEY_PREFIX) + 4  # `sl_live_AbCd`: enough to recognise, too few to guess
# last_used_at is written at most this often per key: every request writing it would
# turn every read into a write.
TOUCH_EVERY = timedelta(minutes=1)
MAX_NAME = 100


class InvalidApiKey(SendlineError):
    """The key is missing, unknown or revoked (one error: no hint which)."""

    code = "invalid_api_key"


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    id: int
    account_id: int | None
    kind: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: `key` is the only time the full key exists outside its holder."""

    key: str
    view: ApiKeyView


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request comes from: an account (kind `account`) or the operator (`admin`)."""

    key_id: int
    account_id: int | None
    kind: str


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _view(row: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        row.id,
        row.account_id,
        row.kind,
        row.name,
        row.prefix,
        row.created_at,
        row.last_used_at,
        row.revoked_at,
    )


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"a key needs a name of 1 to {MAX_NAME} characters")
    return name


def create_key(
    sessions: sessionmaker[Session], account: AccountRef, name: str, *, admin: bool = False
) -> CreatedKey:
    """A new key for `account` (or, with `admin`, an operator key with no account)."""
    name = _checked_name(name)
    if admin and account is not None:
        raise InvalidInput("an admin key belongs to no account: give --admin or an account")
    if not admin and account is None:
        raise InvalidInput("say which account the key is for")
    raw = KEY_PREFIX + secrets.token_urlsafe(24)
    with sessions.begin() as session:
        owner = None if admin else resolve_account(session, account).id
        row = ApiKey(
            account_id=owner,
            kind="admin" if admin else "account",
            name=name,
            prefix=raw[:SHOWN_CHARS],
            key_hash=hash_key(raw),
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        return CreatedKey(raw, _view(row))


def list_keys(sessions: sessionmaker[Session], account: AccountRef) -> list[ApiKeyView]:
    """The account's keys, revoked ones included, oldest first."""
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        rows = session.scalars(
            select(ApiKey).where(ApiKey.account_id == owner.id).order_by(ApiKey.id)
        )
        return [_view(row) for row in rows]


def revoke_key(
    sessions: sessionmaker[Session], key_id: str, *, now: datetime | None = None
) -> ApiKeyView:
    """Revoke a key at once; revoking a revoked key changes nothing."""
    number = parse_id(key_id)
    with sessions.begin() as session:
        row = session.get(ApiKey, number) if number is not None else None
        if row is None:
            raise NotFound(f"no API key {key_id!r}")
        if row.revoked_at is None:
            row.revoked_at = now or datetime.now(UTC)
        session.flush()
        return _view(row)


def authenticate(
    sessions: sessionmaker[Session], raw: str | None, *, now: datetime | None = None
) -> Caller:
    """The caller a raw key stands for; InvalidApiKey when missing, unknown or revoked."""
    if not raw or not raw.startswith(KEY_PREFIX) or len(raw) > 200:
        raise InvalidApiKey("a valid API key is required (Authorization: Bearer sl_live_...)")
    digest = hash_key(raw)
    moment = now or datetime.now(UTC)
    with sessions.begin() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
        # The lookup is by hash already; comparing again in constant time keeps the
        # decision free of any early-exit string comparison.
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            raise InvalidApiKey("unknown or revoked API key")
        if row.revoked_at is not None:
            raise InvalidApiKey("unknown or revoked API key")
        if row.last_used_at is None or moment - row.last_used_at >= TOUCH_EVERY:
            row.last_used_at = moment
        return Caller(row.id, row.account_id, row.kind)


def key_page(
    sessions: sessionmaker[Session], account_id: int, *, limit: int, before_id: int | None
) -> list[ApiKeyView]:
    """The account's keys, revoked ones included, newest first (a page of the API's)."""
    with sessions.begin() as session:
        owner = resolve_account(session, account_id)
        query = select(ApiKey).where(ApiKey.account_id == owner.id)
        rows = session.scalars(newest_first(query, ApiKey.id, before_id, limit))
        return [_view(row) for row in rows]


def revoke_account_key(
    sessions: sessionmaker[Session],
    account_id: int | None,
    key_id: int,
    *,
    now: datetime | None = None,
) -> ApiKeyView:
    """Revoke key `key_id` of account `account_id` (None: the operator, any key). Another
    account's key is NotFound, as one that does not exist; revoking twice changes
    nothing. A key may revoke itself: its next request is a 401."""
    with sessions.begin() as session:
        row = session.get(ApiKey, key_id) if is_id(key_id) else None
        if row is None or (account_id is not None and row.account_id != account_id):
            raise NotFound(f"no API key {key_id} in this account")
        if row.revoked_at is None:
            row.revoked_at = now or datetime.now(UTC)
        session.flush()
        return _view(row)
