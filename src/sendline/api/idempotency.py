"""The `Idempotency-Key` middleware: every POST under /api/v1 that carries the header.

The rules (what is stored, for how long, what a reused key gets) are the service's,
`services/idempotency.py`; this only reads the request, asks the service what to do,
and runs, replays or waits. It is ASGI middleware rather than a route dependency so
that every POST route gets it, including ones written later, and so that the stored
answer is the exact bytes the client got.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sendline.api.problems import PROBLEM_JSON, problem, problem_for
from sendline.api.shown_once import NO_STORE
from sendline.errors import SendlineError
from sendline.services import idempotency
from sendline.services.api_keys import Caller, authenticate

Header = tuple[bytes, bytes]
PREFIX = "/api/v1/"
REPLAYED = (b"idempotent-replayed", b"true")
PURGE_EVERY = 600.0  # seconds


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        sessions: sessionmaker[Session],
        *,
        wait: float = 10.0,
        poll_every: float = 0.05,
    ) -> None:
        self._app = app
        self._sessions = sessions
        self._wait = wait  # how long a twin waits for the first request's answer
        self._poll_every = poll_every
        self._next_purge = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _applies(scope):
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        raw_key = headers.get("idempotency-key")
        if raw_key is None:
            await self._app(scope, receive, send)
            return
        body = await _read_body(receive)
        await self._purge_now_and_then()
        try:
            key = idempotency.checked_key(raw_key)
            caller = await run_in_threadpool(self._caller, headers)
            # The route's auth dependency reuses this instead of looking the key up again.
            scope.setdefault("state", {})["caller"] = caller
            digest = _request_hash(scope, body)
            await self._handle(scope, body, receive, send, (caller.key_id, key, digest))
        except SendlineError as exc:
            await problem_for(exc)(scope, _replay(body), send)

    async def _purge_now_and_then(self) -> None:
        """Stored answers past their 24 hours go, at most once every 10 minutes per
        process: the table stays the size of a day's keyed POSTs, with no job to run."""
        now = asyncio.get_running_loop().time()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY
            await run_in_threadpool(idempotency.purge_expired, self._sessions)

    def _caller(self, headers: Headers) -> Caller:
        _scheme, credentials = get_authorization_scheme_param(headers.get("authorization"))
        return authenticate(self._sessions, credentials)

    async def _handle(
        self, scope: Scope, body: bytes, receive: Receive, send: Send, claim: tuple[int, str, str]
    ) -> None:
        key_id, key, digest = claim
        begun = await run_in_threadpool(idempotency.begin, self._sessions, key_id, key, digest)
        if begun.action == "wait":
            stored = await self._wait_for(begun.row_id)
            if stored is None:
                await problem(
                    409,
                    "idempotency_key_in_use",
                    "the first request with this Idempotency-Key is still running; "
                    "send it again in a moment",
                    field="Idempotency-Key",
                    **{"Retry-After": "1"},
                )(scope, _replay(body), send)
                return
            await _send_stored(send, stored)
            return
        if begun.action == "replay":
            assert begun.response is not None
            await _send_stored(send, begun.response)
            return
        await self._run(scope, body, receive, send, begun.row_id)

    async def _wait_for(self, row_id: int) -> idempotency.StoredResponse | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        while loop.time() < deadline:
            await asyncio.sleep(self._poll_every)
            stored = await run_in_threadpool(idempotency.poll, self._sessions, row_id)
            if stored is False:  # the first one let the key go: nothing to replay yet
                return None
            if stored is not None:
                return stored
        return None

    async def _run(
        self, scope: Scope, body: bytes, receive: Receive, send: Send, row_id: int
    ) -> None:
        status = 500
        content_type = "application/json"
        secret = False
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, content_type, secret
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = Headers(raw=message.get("headers", []))
                content_type = headers.get("content-type", content_type)
                secret = NO_STORE in headers.get("cache-control", "")
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
            await send(message)

        try:
            await self._app(scope, _replay(body, receive), capture)
        finally:
            # Even when the app raised (status stays 500): the key is let go, so a retry
            # with it runs the request instead of waiting for an answer never stored.
            stored = (status, content_type, b"".join(chunks))
            if secret and status < 300:
                stored = _secret_notice(status)
            await run_in_threadpool(idempotency.finish, self._sessions, row_id, *stored)


def _secret_notice(status: int) -> tuple[int, str, bytes]:
    """What a replay gets in place of an answer that held a secret shown once (an API
    key, a signing secret): storing it would keep the secret in clear for 24 hours. The
    request is still done once; the client reads the object, or rotates its secret."""
    notice = problem(
        409,
        "idempotency_key_used",
        f"the first request with this Idempotency-Key succeeded ({status}); its answer "
        "held a secret shown once, which is never stored: read the object, or use a new key",
        field="Idempotency-Key",
    )
    return 409, PROBLEM_JSON, bytes(notice.body)


def _applies(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] == "POST"
        and str(scope["path"]).startswith(PREFIX)
    )


def _request_hash(scope: Scope, body: bytes) -> str:
    """Method, path, query and body: "the same request" as a client means it."""
    digest = hashlib.sha256()
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1")):
        digest.update(str(part).encode("utf-8") + b"\0")
    digest.update(body)
    return digest.hexdigest()


async def _read_body(receive: Receive) -> bytes:
    """The whole body (its size is capped by the body-limit middleware outside this)."""
    chunks = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return bytes(chunks)


def _replay(
    body: bytes, receive: Receive | None = None
) -> Callable[[], Awaitable[MutableMapping[str, Any]]]:
    """A `receive` that gives the buffered body once, then what the client does next
    (a disconnect, when it goes away)."""
    sent = False

    async def replayed() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if receive is None:
            return {"type": "http.disconnect"}
        return await receive()

    return replayed


async def _send_stored(send: Send, stored: idempotency.StoredResponse) -> None:
    headers: list[Header] = [
        (b"content-type", stored.content_type.encode("latin-1")),
        (b"content-length", str(len(stored.body)).encode()),
        REPLAYED,
    ]
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})
