"""A real webhook receiver on loopback: an HTTP server thread that checks every
request's signature with the documented `verify` and records what it accepted.

`status` is what it answers to a well-signed request (200 by default; set 500 or 410
to play a failing endpoint). A receiver made with `start=False` holds a port nobody
listens on (connection refused) until `start()`.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sendline.webhook_signature import (
    EVENT_ID_HEADER,
    EVENT_KIND_HEADER,
    SIGNATURE_HEADER,
    InvalidSignature,
    verify,
)


@dataclass
class Received:
    event_id: int
    kind: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class WebhookReceiver:
    secret: str = ""
    status: int = 200
    accepted: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why each bad request was refused
    requests: int = 0
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.port:
            with socket.socket() as probe:  # a free port; refused until start()
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    @property
    def delivered(self) -> list[int]:
        """The event ids accepted (answered 2xx), in arrival order."""
        return [r.event_id for r in self.accepted]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                answer = receiver.receive(body, {k: v for k, v in self.headers.items()})
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def receive(self, body: bytes, headers: dict[str, str]) -> int:
        with self._lock:
            self.requests += 1
            try:
                verify(body, headers.get(SIGNATURE_HEADER), self.secret)
            except InvalidSignature as exc:
                self.rejected.append(str(exc))
                return 400
            if 200 <= self.status < 300:
                document = json.loads(body)
                assert headers[EVENT_ID_HEADER] == str(document["id"])
                assert headers[EVENT_KIND_HEADER] == document["kind"]
                self.accepted.append(Received(document["id"], document["kind"], document, headers))
            return self.status

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
