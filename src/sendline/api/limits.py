"""Limits on /api/: request rate per key (429 with Retry-After) and body size (413).

Both are ASGI middleware in front of everything else, so a flood or an oversized body
costs no database work: a refused request never reaches authentication.

The rate is per key and per `sendline serve` process, kept in memory. A database row
per key (as the carriers' send rates are, `store/ratelimit.py`) would hold across
processes, but would put a write on every request, and on SQLite every write waits for
the one writer lock the worker also needs. With N serving processes a key gets up to N
times the rate; the setting's documentation says so.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping

from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sendline.api.problems import problem

API_PREFIX = "/api/"
# JSON bodies of the API are small: the largest is an automation definition, bounded at
# save far below this. Uploads (contact imports) get their own, larger limit.
DEFAULT_MAX_BODY = 1024 * 1024
MAX_TRACKED_KEYS = 100_000


class KeyRates:
    """GCRA per key, in memory: `rate` requests a second, `burst` at once."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = 1.0 / rate
        self._tolerance = burst * self._interval
        self._clock = clock
        self._tat: dict[str, float] = {}  # the theoretical arrival time of each key

    def take(self, key: str) -> float:
        """0.0 when `key` may make a request now (and it is counted); otherwise the
        seconds until it may."""
        now = self._clock()
        tat = max(self._tat.get(key, now), now) + self._interval
        allowed_at = tat - self._tolerance
        if now < allowed_at:
            return allowed_at - now
        if len(self._tat) >= MAX_TRACKED_KEYS:
            self._forget_idle(now)
        self._tat[key] = tat
        return 0.0

    def _forget_idle(self, now: float) -> None:
        # A key whose arrival time has passed is back to a full burst: nothing to keep.
        for idle in [k for k, at in self._tat.items() if at <= now]:
            del self._tat[idle]


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, rates: KeyRates) -> None:
        self._app = app
        self._rates = rates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(API_PREFIX):
            await self._app(scope, receive, send)
            return
        wait = self._rates.take(_who(scope))
        if wait > 0:
            retry_after = str(max(1, math.ceil(wait)))
            await problem(
                429,
                "rate_limited",
                f"too many requests with this API key; retry in {retry_after} s",
                **{"Retry-After": retry_after},
            )(scope, receive, send)
            return
        await self._app(scope, receive, send)


def _who(scope: Scope) -> str:
    """The key's hash (never the key itself, which must not sit in memory dumps or
    logs), or the client's address for requests without one."""
    _scheme, credentials = get_authorization_scheme_param(Headers(scope=scope).get("authorization"))
    if credentials:
        return "key:" + hashlib.sha256(credentials.encode("utf-8")).hexdigest()[:32]
    client = scope.get("client")
    return f"ip:{client[0] if client else '-'}"


class BodyLimitMiddleware:
    """413 for a body past its path's limit: on the declared Content-Length before
    anything is read, and on the bytes that come when none is declared (chunked)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default: int = DEFAULT_MAX_BODY,
        by_prefix: Mapping[str, int] | None = None,
        guarded: tuple[str, ...] = (API_PREFIX,),
    ) -> None:
        self._app = app
        self._default = default
        self._by_prefix = dict(by_prefix or {})
        self._guarded = guarded

    def limit_for(self, path: str) -> int:
        for prefix, limit in self._by_prefix.items():
            if path.startswith(prefix):
                return limit
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith(self._guarded):
            await self._app(scope, receive, send)
            return
        limit = self.limit_for(path)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(limit)(scope, receive, send)
            return
        if declared is not None:  # the server holds the client to its Content-Length
            await self._app(scope, receive, send)
            return
        await self._buffered(scope, receive, send, limit)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        chunks = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks += message.get("body", b"")
            if len(chunks) > limit:
                await _too_large(limit)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        given = False

        async def replay() -> Message:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": bytes(chunks), "more_body": False}
            return await receive()

        await self._app(scope, replay, send)


def _too_large(limit: int) -> ASGIApp:
    size = f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"
    return problem(413, "body_too_large", f"the request body is larger than {size}")
