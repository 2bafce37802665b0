"""Outbound webhooks: the endpoints an account registers, and their delivery log.

An endpoint receives its account's events of the kinds it subscribed to, signed with
its secret (`sendline/webhook_signature.py`), delivered by the worker
(`engine/webhooks.py`). The secret is shown once, when the endpoint is created or its
secret rotated; it is stored sealed with SENDLINE_SECRET_KEY (needed to sign, so not a
hash). A new endpoint starts at the account's latest event: it hears what happens from
then on. Re-enabling a disabled one resumes from its cursor (nothing is skipped).

URLs must be https:// (http:// to the machine itself only with
SENDLINE_WEBHOOKS_ALLOW_HTTP), without credentials, and not an IP literal of a private
or loopback network unless that setting is on: a tenant must not make the worker call
the operator's internal services.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.config import Settings
from sendline.errors import InvalidInput, NotFound
from sendline.services import AccountRef, resolve_account
from sendline.store.event_models import EVENT_KINDS, AccountEvent
from sendline.store.ids import parse_id
from sendline.store.keyset import newest_first
from sendline.store.secret_box import SecretBox
from sendline.store.webhook_models import MAX_URL, WebhookDelivery, WebhookEndpoint
from sendline.webhook_signature import SECRET_PREFIX

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
SECRET_FIELD = "signing_secret"


@dataclass(frozen=True, slots=True)
class WebhookView:
    id: int
    account_id: int
    url: str
    events: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    cursor: int
    attempts: int
    failing_since: datetime | None
    next_attempt_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CreatedWebhook:
    """An endpoint with its signing secret: the one time the secret is shown."""

    secret: str
    view: WebhookView


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: int
    endpoint_id: int
    event_id: int
    event_kind: str
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    delivered: bool
    at: datetime
    next_attempt_at: datetime | None


def view_of(row: WebhookEndpoint) -> WebhookView:
    return WebhookView(
        row.id,
        row.account_id,
        row.url,
        tuple(row.events),
        row.enabled,
        row.disabled_reason,
        row.cursor,
        row.attempts,
        row.failing_since,
        row.next_attempt_at,
        row.created_at,
    )


def _delivery_view(row: WebhookDelivery) -> DeliveryView:
    return DeliveryView(
        row.id,
        row.endpoint_id,
        row.event_id,
        row.event_kind,
        row.attempt,
        row.status_code,
        row.error,
        row.duration_ms,
        row.delivered,
        row.at,
        row.next_attempt_at,
    )


def check_url(url: str, *, allow_http: bool) -> str:
    """The URL, or InvalidInput naming `url` (see the module docstring for the rules)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidInput("url is not a valid URL", field="url") from None
    controls = any(ord(c) < 33 or ord(c) == 127 for c in url)  # spaces, NUL...
    if len(url) > MAX_URL or not host or parts.fragment or controls:
        raise InvalidInput("url must be an absolute URL without a #fragment", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("url must not carry credentials (user:password@)", field="url")
    local = host in LOCAL_HOSTS
    if parts.scheme == "http" and local and allow_http:
        return url
    if parts.scheme != "https":
        hint = "" if allow_http else " (http:// to localhost needs SENDLINE_WEBHOOKS_ALLOW_HTTP)"
        raise InvalidInput(f"url must be an https:// URL{hint}", field="url")
    if (local or _private_ip(host)) and not allow_http:
        raise InvalidInput("url must not point at a private or loopback address", field="url")
    return url


def _private_ip(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


def check_events(events: Sequence[str]) -> list[str]:
    """The kinds, deduplicated in the order of EVENT_KINDS; at least one."""
    unknown = sorted(set(events) - set(EVENT_KINDS))
    if unknown:
        raise InvalidInput(
            f"unknown event kind {unknown[0]!r} (kinds: {', '.join(EVENT_KINDS)})",
            field="events",
        )
    if not events:
        raise InvalidInput("subscribe to at least one event kind", field="events")
    return [kind for kind in EVENT_KINDS if kind in events]


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _find(session: Session, account_id: int | None, endpoint: int | str) -> WebhookEndpoint:
    """The endpoint, in `account_id` only (None: any account, the operator's CLI)."""
    endpoint_id = endpoint if isinstance(endpoint, int) else parse_id(endpoint)
    row = session.get(WebhookEndpoint, endpoint_id) if endpoint_id is not None else None
    if row is None or (account_id is not None and row.account_id != account_id):
        raise NotFound(f"no webhook endpoint {endpoint}")
    return row


def create_webhook(
    sessions: sessionmaker[Session],
    settings: Settings,
    account: AccountRef,
    url: str,
    events: Sequence[str],
) -> CreatedWebhook:
    """A new endpoint, starting after the account's latest event."""
    url = check_url(url, allow_http=settings.webhooks_allow_http)
    kinds = check_events(events)
    secret = new_secret()
    sealed = SecretBox(settings.secret_keys).seal({SECRET_FIELD: secret})
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        latest = session.scalar(
            select(func.max(AccountEvent.id)).where(AccountEvent.account_id == owner.id)
        )
        row = WebhookEndpoint(
            account_id=owner.id,
            url=url,
            secret=sealed,
            events=kinds,
            enabled=True,
            cursor=latest or 0,
            attempts=0,
        )
        session.add(row)
        session.flush()
        return CreatedWebhook(secret, view_of(row))


def list_webhooks(
    sessions: sessionmaker[Session],
    account: AccountRef,
    *,
    before_id: int | None = None,
    limit: int = 50,
) -> list[WebhookView]:
    """The account's endpoints, newest first."""
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        query = select(WebhookEndpoint).where(WebhookEndpoint.account_id == owner.id)
        rows = session.scalars(newest_first(query, WebhookEndpoint.id, before_id, limit))
        return [view_of(row) for row in rows]


def get_webhook(
    sessions: sessionmaker[Session], account: AccountRef, endpoint: int | str
) -> WebhookView:
    with sessions.begin() as session:
        return view_of(_find(session, resolve_account(session, account).id, endpoint))


def update_webhook(
    sessions: sessionmaker[Session],
    settings: Settings,
    account: AccountRef,
    endpoint: int | str,
    *,
    url: str | None = None,
    events: Sequence[str] | None = None,
    enabled: bool | None = None,
) -> WebhookView:
    """Change the URL or kinds; disable, or re-enable (resuming from the cursor, its
    failures forgotten: the head event is tried at once)."""
    checked_url = None if url is None else check_url(url, allow_http=settings.webhooks_allow_http)
    kinds = None if events is None else check_events(events)
    with sessions.begin() as session:
        row = _find(session, resolve_account(session, account).id, endpoint)
        if checked_url is not None:
            row.url = checked_url
        if kinds is not None:
            row.events = kinds
        if enabled is True and not row.enabled:
            row.enabled = True
            row.disabled_reason = None
            _forget_failures(row)
        elif enabled is False and row.enabled:
            row.enabled = False
            row.disabled_reason = "disabled by the user"
        return view_of(row)


def _forget_failures(row: WebhookEndpoint) -> None:
    row.attempts = 0
    row.failing_since = None
    row.next_attempt_at = None


def delete_webhook(
    sessions: sessionmaker[Session], account: AccountRef, endpoint: int | str
) -> WebhookView:
    """Delete the endpoint and its delivery log."""
    with sessions.begin() as session:
        row = _find(session, resolve_account(session, account).id, endpoint)
        view = view_of(row)
        session.delete(row)
        return view


def rotate_secret(
    sessions: sessionmaker[Session],
    settings: Settings,
    account: AccountRef,
    endpoint: int | str,
) -> CreatedWebhook:
    """A new signing secret, used from the next delivery on; the old one stops at once."""
    secret = new_secret()
    sealed = SecretBox(settings.secret_keys).seal({SECRET_FIELD: secret})
    with sessions.begin() as session:
        row = _find(session, resolve_account(session, account).id, endpoint)
        row.secret = sealed
        return CreatedWebhook(secret, view_of(row))


def list_deliveries(
    sessions: sessionmaker[Session],
    account: AccountRef,
    endpoint: int | str,
    *,
    before_id: int | None = None,
    limit: int = 50,
    any_account: bool = False,
) -> list[DeliveryView]:
    """The endpoint's delivery log, newest first. `any_account`: the endpoint is named
    by id alone (the operator's CLI); `account` is then ignored."""
    with sessions.begin() as session:
        owner = None if any_account else resolve_account(session, account).id
        row = _find(session, owner, endpoint)
        query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == row.id)
        rows = session.scalars(newest_first(query, WebhookDelivery.id, before_id, limit))
        return [_delivery_view(delivery) for delivery in rows]
