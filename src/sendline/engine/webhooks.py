"""Delivering outbound webhooks: each endpoint walks its account's events in id order.

A worker runs a `WebhookDeliverer` on a thread of its own (an endpoint that takes its
full 5 s timeout must not hold back the sending loop). Each pass claims a few due
endpoints with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the lease columns on
both), so two workers never deliver to one endpoint at once, and delivers each one's
events one by one, strictly in id order:

- a 2xx answer is delivered: the endpoint's cursor moves past the event;
- 410 Gone disables the endpoint at once (the receiver says it is gone for good);
- anything else (another status, a timeout, a refused connection) is retried, the same
  event first, after 10 s, 20 s, 40 s... capped at an hour; after a day of failure the
  endpoint is disabled with the reason ("failing since ...: last error ...").

Every attempt is logged in `webhook_deliveries`. Delivery is at least once: a worker
that dies between the receiver's answer and recording it sends that event again, so
receivers deduplicate on `Sendline-Event-Id`.

An event is delivered only once it is `settle` old: ids are taken when a row is
inserted, so on PostgreSQL a transaction still running can commit an event with an
id below one already visible. Waiting out the engine's short transactions keeps the
cursor from passing an event it has not seen yet.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from sendline import __version__
from sendline.errors import SendlineError
from sendline.store.event_models import AccountEvent
from sendline.store.secret_box import SecretBox
from sendline.store.webhook_models import MAX_REASON, WebhookDelivery, WebhookEndpoint
from sendline.webhook_signature import (
    EVENT_ID_HEADER,
    EVENT_KIND_HEADER,
    SIGNATURE_HEADER,
    sign,
)

log = logging.getLogger("sendline.webhooks")

FIRST_RETRY = 10.0  # seconds; doubled after each failure of the same event
MAX_RETRY = 3600.0
GIVE_UP_AFTER = timedelta(hours=24)
TIMEOUT = 5.0
LEASE = timedelta(seconds=60)
SETTLE = timedelta(seconds=2)
ENDPOINTS_PER_PASS = 20
# The delivery log is kept this long: it explains the last weeks' failures; kept
# forever it would grow by a row per event delivered.
KEEP_LOG = timedelta(days=30)
PRUNE_EVERY = 3600.0  # seconds


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failure in a row of one event."""
    return timedelta(seconds=min(FIRST_RETRY * 2 ** max(attempts - 1, 0), MAX_RETRY))


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410

    def describe(self) -> str:
        return self.error or f"HTTP {self.status_code}"


@dataclass(frozen=True, slots=True)
class Prepared:
    """The head event of an endpoint, ready to POST."""

    endpoint_id: int
    url: str
    sealed_secret: str
    event_id: int
    event_kind: str
    body: bytes


def event_body(event: AccountEvent) -> bytes:
    """The JSON an endpoint receives for one event (documented in docs/webhooks.md)."""
    document = {
        "id": event.id,
        "kind": event.kind,
        "created_at": event.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "account_id": event.account_id,
        "message_id": event.message_id,
        "contact_id": event.contact_id,
        "data": event.data,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class WebhookDeliverer:
    """Delivers due webhook events; `deliver_due()` is one pass, `start()` a thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        secret_keys: tuple[str, ...],
        worker_id: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        client: httpx.Client | None = None,
        every: float = 1.0,
        settle: timedelta = SETTLE,
        allow_private: bool = False,
    ) -> None:
        self._sessions = sessions
        self._box = SecretBox(secret_keys)
        self.worker_id = worker_id
        self._clock = clock
        self._client = client  # made on first use: most workers' tests never POST
        self.every = every
        self.settle = settle
        # SENDLINE_WEBHOOKS_ALLOW_HTTP: endpoints on this machine or a private network.
        self.allow_private = allow_private
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def deliver_due(self) -> int:
        """Deliver to due endpoints, one claimed at a time (a claim taken long before
        its turn could run out meanwhile); returns the attempts made."""
        done: list[int] = []
        attempts = 0
        while len(done) < ENDPOINTS_PER_PASS and not self._stop.is_set():
            endpoint_id = self._claim(skip=done)
            if endpoint_id is None:
                break
            done.append(endpoint_id)
            try:
                attempts += self._deliver_endpoint(endpoint_id)
            finally:
                self._release(endpoint_id)
        return attempts

    def _claim(self, skip: list[int] | None = None) -> int | None:
        """Lease the first due endpoint with events past its cursor (not in `skip`)."""
        now = self._clock()
        free = or_(WebhookEndpoint.claimed_until.is_(None), WebhookEndpoint.claimed_until < now)
        due = or_(WebhookEndpoint.next_attempt_at.is_(None), WebhookEndpoint.next_attempt_at <= now)
        pending = exists().where(
            AccountEvent.account_id == WebhookEndpoint.account_id,
            AccountEvent.id > WebhookEndpoint.cursor,
            AccountEvent.created_at <= now - self.settle,
        )
        query = (
            select(WebhookEndpoint.id)
            .where(WebhookEndpoint.enabled.is_(True), free, due, pending)
            .where(WebhookEndpoint.id.not_in(skip or []))
            .order_by(WebhookEndpoint.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=WebhookEndpoint)
        )
        with self._sessions.begin() as session:
            endpoint_id = session.scalar(query)
            if endpoint_id is None:
                return None
            # `free` again: SQLite has no row locks, and two processes may have read
            # the same row; the write lock lets one of them take it.
            taken: int | None = session.scalar(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == endpoint_id, free)
                .values(claimed_by=self.worker_id, claimed_until=now + LEASE)
                .returning(WebhookEndpoint.id)
            )
            return taken

    def _release(self, endpoint_id: int) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(WebhookEndpoint)
                .where(
                    WebhookEndpoint.id == endpoint_id,
                    WebhookEndpoint.claimed_by == self.worker_id,
                )
                .values(claimed_by=None, claimed_until=None)
            )

    def _deliver_endpoint(self, endpoint_id: int) -> int:
        """The endpoint's events in order until one fails, none is left, or half the
        lease is used (the claim must not run out while we deliver)."""
        started = time.monotonic()
        attempts = 0
        while time.monotonic() - started < LEASE.total_seconds() / 2 and not self._stop.is_set():
            prepared = self._next(endpoint_id)
            if prepared is None:
                break
            outcome = self._post(prepared)
            attempts += 1
            if not self._record(prepared, outcome):
                break
        return attempts

    def _next(self, endpoint_id: int) -> Prepared | None:
        """The endpoint's head event: its first event of its kinds past the cursor,
        once settled. None when there is none yet (the cursor then moves past the
        settled events of other kinds) or the endpoint is no longer ours."""
        with self._sessions.begin() as session:
            row = session.get(WebhookEndpoint, endpoint_id)
            if row is None or not row.enabled or row.claimed_by != self.worker_id:
                return None
            settled_before = self._clock() - self.settle
            after = (AccountEvent.account_id == row.account_id, AccountEvent.id > row.cursor)
            head = session.scalars(
                select(AccountEvent)
                .where(*after, AccountEvent.kind.in_(row.events))
                .order_by(AccountEvent.id)
                .limit(1)
            ).first()
            if head is None:
                top = session.scalar(
                    select(func.max(AccountEvent.id)).where(
                        *after, AccountEvent.created_at <= settled_before
                    )
                )
                row.cursor = top or row.cursor
                return None
            if head.created_at > settled_before:
                return None
            return Prepared(row.id, row.url, row.secret, head.id, head.kind, event_body(head))

    def _post(self, prepared: Prepared) -> Outcome:
        started = time.monotonic()
        try:
            secret = self._box.open(prepared.sealed_secret)["signing_secret"]
        except (SendlineError, KeyError):
            return Outcome(None, "the signing secret cannot be opened (SENDLINE_SECRET_KEY)", 0)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Sendline-Webhooks/{__version__}",
            SIGNATURE_HEADER: sign(secret, prepared.body, int(time.time())),
            EVENT_ID_HEADER: str(prepared.event_id),
            EVENT_KIND_HEADER: prepared.event_kind,
        }
        if self._client is None:
            self._client = httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        private = None if self.allow_private else private_address(prepared.url)
        if private is not None:
            return Outcome(None, f"the URL's host resolves to a private address ({private})", 0)
        try:
            response = self._client.post(prepared.url, content=prepared.body, headers=headers)
            status, error = response.status_code, None
        except httpx.TimeoutException:
            status, error = None, f"timed out after {TIMEOUT:g} s"
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"[:MAX_REASON]
        return Outcome(status, error, int((time.monotonic() - started) * 1000))

    def _record(self, prepared: Prepared, outcome: Outcome) -> bool:
        """Log the attempt and move the endpoint on; True when the next event may go."""
        now = self._clock()
        with self._sessions.begin() as session:
            row = session.get(WebhookEndpoint, prepared.endpoint_id)
            if row is None:
                return False  # deleted meanwhile, its log with it
            ours = row.claimed_by == self.worker_id and row.cursor < prepared.event_id
            attempt = row.attempts + 1
            retry_at = None
            if ours:
                retry_at = _apply(row, prepared.event_id, outcome, now)
            session.add(
                WebhookDelivery(
                    endpoint_id=row.id,
                    event_id=prepared.event_id,
                    event_kind=prepared.event_kind,
                    attempt=attempt,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                    delivered=outcome.delivered,
                    at=now,
                    next_attempt_at=retry_at,
                )
            )
            return ours and outcome.delivered and row.enabled

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sendline-webhooks", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Deliver no further event after the request in flight."""
        self._stop.set()

    def stop(self) -> None:
        """Stop after the request in flight (at most the 5 s timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def prune(self) -> int:
        """Delete delivery log rows older than KEEP_LOG; returns how many."""
        with self._sessions.begin() as session:
            result = session.execute(
                delete(WebhookDelivery).where(WebhookDelivery.at < self._clock() - KEEP_LOG)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def _run(self) -> None:
        pruned_at = -PRUNE_EVERY
        while not self._stop.is_set():
            try:
                if time.monotonic() - pruned_at >= PRUNE_EVERY:
                    pruned_at = time.monotonic()
                    self.prune()
                busy = self.deliver_due()
            except Exception:  # noqa: BLE001 - logged; the next pass tries again
                log.exception("webhook delivery pass failed")
                busy = 0
            if not busy:
                self._stop.wait(self.every)


def private_address(url: str) -> str | None:
    """The first address of the URL's host that is not on the public internet (a
    tenant must not make the worker call the operator's internal services), or None.
    A host that does not resolve is left to the POST to report. (A DNS answer that
    changes between this lookup and the POST's is not caught: defence in depth, with
    the URL rules at registration.)"""
    parts = urlsplit(url)
    try:
        found = socket.getaddrinfo(parts.hostname or "", parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if not address.is_global:
            return str(address)
    return None


def _apply(row: WebhookEndpoint, event_id: int, outcome: Outcome, now: datetime) -> datetime | None:
    """The endpoint after one attempt at its head event; returns when to retry (None:
    no retry, delivered or disabled)."""
    if outcome.delivered:
        row.cursor = event_id
        row.attempts, row.failing_since, row.next_attempt_at = 0, None, None
        return None
    since = row.failing_since or now
    row.attempts += 1
    row.failing_since = since
    if outcome.gone:
        _disable(row, f"the endpoint answered 410 Gone at {_when(now)}")
        return None
    if now - since >= GIVE_UP_AFTER:
        _disable(row, f"failing since {_when(since)}: last error {outcome.describe()}")
        return None
    row.next_attempt_at = now + backoff(row.attempts)
    return row.next_attempt_at


def _disable(row: WebhookEndpoint, reason: str) -> None:
    row.enabled = False
    row.disabled_reason = reason[:MAX_REASON]
    row.next_attempt_at = None
    log.warning("webhook endpoint %d disabled: %s", row.id, reason)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
