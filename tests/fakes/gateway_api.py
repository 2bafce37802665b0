"""A fake SMS gateway: a real HTTP server on loopback speaking the API of the example in
docs/providers.md, with faults on demand and signed webhooks back to Sendline.

- `POST /v1/messages` (JSON, `Authorization: Bearer KEY`) stores the message and answers
  201 `{"message": {"id": "gw-N", "status": "queued"}}`;
- `GET /v1/messages?reference=R` finds it by the reference given at send time (404 if none);
- `fail_next(kind, ...)` makes the next sends fail, one kind each: `429` (Retry-After 7),
  `500`, `permanent` (400 invalid_number), `opt_out` (400 recipient_opted_out), `slow`
  (stored, answered after `slow_seconds`), `drop` (stored, connection closed unanswered);
- `post_status` / `post_inbound` post webhooks signed like a real gateway: HMAC-SHA256 of
  `TIMESTAMP.BODY` (computed here independently of Sendline's code).

Its own implementation of everything, so a test does not check Sendline against itself.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "test-key-0123456789abcdef"
WEBHOOK_SECRET = "whsec-0123456789abcdef"
FAULTS = frozenset({"429", "500", "permanent", "opt_out", "slow", "drop"})


@dataclass
class Stored:
    """A message the fake gateway accepted."""

    id: str
    to: str
    sender: str | None
    text: str
    reference: str | None
    status_url: str | None
    status: str = "queued"


class FakeGateway:
    def __init__(self, *, api_key: str = API_KEY, webhook_secret: str = WEBHOOK_SECRET) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.slow_seconds = 1.5
        self.messages: list[Stored] = []
        self.requests = 0  # every send request that reached the fake, faults included
        self._faults: deque[str] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeGateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, *kinds: str) -> None:
        assert set(kinds) <= FAULTS, kinds
        with self._lock:
            self._faults.extend(kinds)

    def next_fault(self) -> str | None:
        with self._lock:
            self.requests += 1
            return self._faults.popleft() if self._faults else None

    def store(self, data: dict[str, Any]) -> Stored:
        with self._lock:
            message = Stored(
                id=f"gw-{next(self._ids)}",
                to=str(data.get("to")),
                sender=data.get("from"),
                text=str(data.get("text")),
                reference=data.get("reference"),
                status_url=data.get("status_url"),
            )
            self.messages.append(message)
            return message

    def by_reference(self, reference: str) -> list[Stored]:
        with self._lock:
            return [m for m in self.messages if m.reference == reference]

    # -- webhooks --------------------------------------------------------------------

    def sign(self, body: bytes, timestamp: str, secret: str | None = None) -> str:
        key = (secret or self.webhook_secret).encode()
        return hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()

    def post_status(
        self, message: Stored, status: str, *, error_code: str | None = None, **options: Any
    ) -> int:
        """Post a status report for `message` to the URL it was given; returns the HTTP
        status Sendline answered."""
        message.status = status
        assert message.status_url, "the message was sent without a status URL"
        document = {
            "id": message.id,
            "status": status,
            "error_code": error_code,
            "reference": message.reference,
        }
        return self.post(message.status_url, json.dumps(document).encode(), **options)

    def post_inbound(
        self, url: str, *, sender: str, to: str, text: str, inbound_id: str, **options: Any
    ) -> int:
        document = {"id": inbound_id, "from": sender, "to": to, "text": text}
        return self.post(url, json.dumps(document).encode(), **options)

    def post(
        self,
        url: str,
        body: bytes,
        *,
        signed: bool = True,
        secret: str | None = None,
        timestamp: float | None = None,
        signature: str | None = None,
    ) -> int:
        """POST `body` signed (unless `signed` is False) with `secret` at `timestamp`
        (default: the right secret, now); `signature` replaces the computed one."""
        stamp = str(int(time.time() if timestamp is None else timestamp))
        headers = {"Content-Type": "application/json", "X-Timestamp": stamp}
        if signed:
            headers["X-Signature"] = signature or self.sign(body, stamp, secret)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


def _handler(fake: FakeGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a real API

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet test output

        def _answer(
            self, status: int, document: Any, headers: dict[str, str] | None = None
        ) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if urlsplit(self.path).path != "/v1/messages":
                return self._answer(404, {"error": {"code": "not_found"}})
            if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                return self._answer(401, {"error": {"code": "unauthorized"}})
            fault = fake.next_fault()
            if fault == "429":
                return self._answer(429, {"error": {"code": "rate"}}, {"Retry-After": "7"})
            if fault == "500":
                return self._answer(500, {"error": {"code": "internal"}})
            if fault in ("permanent", "opt_out"):
                code = "invalid_number" if fault == "permanent" else "recipient_opted_out"
                return self._answer(400, {"error": {"code": code}})
            message = fake.store(json.loads(raw))
            if fault == "drop":
                # It has the message; the caller never hears so.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if fault == "slow":
                time.sleep(fake.slow_seconds)
            return self._answer(201, {"message": {"id": message.id, "status": "queued"}})

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                return self._answer(401, {"error": {"code": "unauthorized"}})
            reference = parse_qs(parts.query).get("reference", [""])[0]
            found = fake.by_reference(reference) if parts.path == "/v1/messages" else []
            if not found:
                return self._answer(404, {"error": {"code": "not_found"}})
            message = found[0]
            return self._answer(200, {"message": {"id": message.id, "status": message.status}})

    return Handler


DOCS = Path(__file__).resolve().parents[2] / "docs" / "providers.md"
EXAMPLE_HOST = "https://sms.example.com"


def docs_example(base_url: str | None = None) -> str:
    """The complete example of docs/providers.md, pointed at `base_url` (this fake)."""
    match = re.search(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None, "docs/providers.md lost its YAML example"
    text = match.group(1)
    return text.replace(EXAMPLE_HOST, base_url) if base_url else text
