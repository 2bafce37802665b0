"""The fake Twilio API's HTTP side: routes, Basic auth, Twilio-shaped answers and faults.

The state and the behaviour live in `twilio_api.FakeTwilio`; this module only speaks
HTTP for it (stdlib `http.server`, one thread per connection, keep-alive).
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

if TYPE_CHECKING:
    from tests.fakes.twilio_api import FakeTwilio, Fault

API_VERSION = "2010-04-01"
STATS_PATH = "/_fake/stats"
ERROR_MESSAGES = {
    20429: "Too Many Requests",
    21211: "The 'To' number {to} is not a valid phone number.",
    21408: "Permission to send an SMS has not been enabled for the region of 'To' number: {to}.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number",
    21614: "'To' number is not a valid mobile number",
    30001: "Queue overflow",
    30008: "Unknown error",
}


def make_handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.fake = fake
    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # A dispatcher opens tens of connections at once; the default backlog (5) would
    # drop connection attempts and slow every benchmark by the kernel's retry delay.
    request_queue_size = 1024


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTwilio
    protocol_version = "HTTP/1.1"  # keep-alive: the SDK pools its connections
    # Headers and body go out as two writes: with Nagle's algorithm on, the body would
    # wait for the client's delayed ACK of the headers (40 ms a call on Linux).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and benchmarks read the fake's lists, not its log

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        account_sid, rest = self._route()
        if account_sid is None:
            return None
        if rest != "Messages.json":
            return self._error(404, 20404, "The requested resource was not found")
        form = dict(parse_qsl(raw, keep_blank_values=True))
        if not form.get("To") or not (form.get("From") or form.get("MessagingServiceSid")):
            return self._error(
                400, 21604 if not form.get("To") else 21603, "To and From are required"
            )
        fault = self.fake.next_fault(self.fake.faults)
        self.fake.count_create_call()
        if fault is not None and fault.kind not in ("slow", "drop"):
            return self._fault(fault, form)
        message = self.fake.create(account_sid, form)
        if fault is not None and fault.kind == "drop":
            return self._drop()
        self._pause(fault.delay if fault is not None else 0.0)
        self._json(201, message.resource())

    def do_GET(self) -> None:
        if self.path == STATS_PATH:  # for a fake run in a process of its own (benchmarks)
            return self._json(200, self.fake.stats())
        account_sid, rest = self._route()
        if account_sid is None:
            return None
        fault = self.fake.next_fault(self.fake.lookup_faults)
        if fault is not None and fault.kind == "drop":
            return self._drop()
        if fault is not None and fault.kind != "slow":
            return self._fault(fault, {})
        self._pause(fault.delay if fault is not None else 0.0)
        query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        if rest == "Messages.json":
            return self._list(account_sid, query)
        sid = rest.removeprefix("Messages/").removesuffix(".json")
        message = self.fake.find(account_sid, sid)
        if message is None or not rest.startswith("Messages/"):
            return self._error(404, 20404, f"The requested resource {self.path} was not found")
        self._json(200, message.resource())

    def _list(self, account_sid: str, query: dict[str, str]) -> None:
        size = max(1, min(1000, int(query.get("PageSize") or 50)))
        page = max(0, int(query.get("Page") or 0))
        found = self.fake.search(account_sid, query)
        chunk = found[page * size : (page + 1) * size]
        base = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        keep = {k: v for k, v in query.items() if k not in ("Page", "PageToken")}

        def page_uri(number: int) -> str:
            return f"{base}?{urlencode({**keep, 'PageSize': size, 'Page': number})}"

        more = (page + 1) * size < len(found)
        self._json(
            200,
            {
                "messages": [m.resource() for m in chunk],
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if more else None,
                "previous_page_uri": page_uri(page - 1) if page else None,
                "page": page,
                "page_size": size,
                "start": page * size,
                "end": page * size + max(0, len(chunk) - 1),
                "uri": page_uri(page),
            },
        )

    # -- plumbing ----------------------------------------------------------------------

    def _route(self) -> tuple[str | None, str]:
        """The account SID and what follows it, once the Basic auth is checked; None
        (and the error answered) when the path is no account's or the auth is wrong."""
        path = urlsplit(self.path).path
        prefix = f"/{API_VERSION}/Accounts/"
        if not path.startswith(prefix):
            self._error(404, 20404, "The requested resource was not found")
            return None, ""
        account_sid, _, rest = path[len(prefix) :].partition("/")
        if not self._authorized(account_sid):
            self._error(401, 20003, "Authenticate")
            return None, ""
        return account_sid, rest

    def _authorized(self, account_sid: str) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        token = self.fake.accounts.get(user)
        return user == account_sid and token is not None and secrets.compare_digest(token, password)

    def _pause(self, extra: float) -> None:
        delay = self.fake.latency + extra
        if delay > 0:
            time.sleep(delay)

    def _fault(self, fault: Fault, form: Mapping[str, str]) -> None:
        self._pause(0.0)
        if fault.kind == "429":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            return self._error(429, 20429, "Too Many Requests", headers)
        if fault.kind == "500":
            return self._send(500, b"Internal Server Error", "text/plain", {})
        template = ERROR_MESSAGES.get(fault.code, "Error {code}")
        message = template.format(to=form.get("To", ""), code=fault.code)
        self._error(fault.status, fault.code, message)

    def _drop(self) -> None:
        # The message is stored; the caller never hears of it.
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _error(
        self, status: int, code: int, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        self._send(status, json.dumps(body).encode(), "application/json", headers or {})

    def _json(self, status: int, payload: object) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", {})

    def _send(self, status: int, body: bytes, kind: str, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
