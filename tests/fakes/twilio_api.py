"""A fake Twilio API: a real HTTP server on 127.0.0.1 that the real `twilio` SDK talks to.

It speaks what Sendline uses of Twilio's REST API, Twilio-shaped (JSON, form-encoded
requests, HTTP Basic auth with the account SID and auth token):
- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (To, From or
  MessagingServiceSid, Body, StatusCallback) creates a message;
- `GET .../Messages/{Sid}.json` fetches one; `GET .../Messages.json` lists them, newest
  first, filtered by To, From, DateSent / DateSent< / DateSent> (dates), paged with
  PageSize and Page.

What it accepted is in `messages` (in order). Faults are injected per create call:
`faults` is a queue consumed one per call (`Fault.too_many()`, `Fault.server_error()`,
`Fault.refuse(21211)`, `Fault.slow(2.0)`, `Fault.drop()`), and `fault_rate` /
`fault_kinds` fail a random share of the calls (chaos runs); `latency` delays every
answer. `lookup_faults` does the same for fetch and list calls. A `drop` or `slow`
fault stores the message first: Twilio has it, the caller does not know.

Accepted messages get signed status callbacks (`queued`, `sent`, then `delivered`, or
the final status `outcomes` gives the To number), posted to their StatusCallback with
an `X-Twilio-Signature` made by the SDK's `RequestValidator`, from a thread of their
own; `callbacks` records each post and its answer. `post_inbound` posts a signed inbound
text to a URL (Twilio's incoming-message webhook).

    with FakeTwilio() as fake:              # or fake.start() ... fake.stop()
        fake.add_account("AC...", "token")  # one is there already: fake.account_sid
        provider = TwilioProvider(..., api_url=fake.url, ...)
"""

from __future__ import annotations

import argparse
import queue
import random
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from tests.fakes.twilio_http import API_VERSION, Server, make_handler

DEFAULT_ACCOUNT_SID = "AC" + "0" * 30 + "01"
DEFAULT_AUTH_TOKEN = "f" * 30 + "01"
FAULT_KINDS = ("429", "500", "error", "slow", "drop")


@dataclass(frozen=True)
class Fault:
    """What one call gets instead of a normal answer.

    kind: "429" (Retry-After), "500", "error" (a Twilio error `code` with `status`),
    "slow" (stores the message, answers after `delay`), "drop" (stores the message,
    closes the connection without an answer)."""

    kind: str
    code: int = 0
    status: int = 400
    delay: float = 0.0
    retry_after: float | None = 1.0

    @staticmethod
    def too_many(retry_after: float | None = 1.0) -> Fault:
        return Fault("429", 20429, 429, retry_after=retry_after)

    @staticmethod
    def server_error() -> Fault:
        return Fault("500", 20500, 500)

    @staticmethod
    def refuse(code: int, status: int = 400) -> Fault:
        return Fault("error", code, status)

    @staticmethod
    def slow(delay: float) -> Fault:
        return Fault("slow", delay=delay)

    @staticmethod
    def drop() -> Fault:
        return Fault("drop")


@dataclass
class FakeMessage:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str | None
    date_created: datetime
    status: str = "queued"
    date_sent: datetime | None = None
    error_code: int | None = None

    def resource(self) -> dict[str, Any]:
        def rfc2822(value: datetime | None) -> str | None:
            return format_datetime(value, usegmt=True) if value else None

        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "to": self.to,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "body": self.body,
            "status": self.status,
            "direction": "outbound-api",
            "num_segments": "1",
            "num_media": "0",
            "error_code": self.error_code,
            "error_message": None,
            "price": None,
            "price_unit": "USD",
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_sent or self.date_created),
            "date_sent": rfc2822(self.date_sent),
            "uri": uri,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        }


@dataclass(frozen=True)
class Callback:
    """One status callback the fake posted, and what Sendline answered."""

    url: str
    params: dict[str, str]
    status_code: int  # 0: no answer (connection failed)


@dataclass
class _Plan:
    """What happens to a message after it is accepted."""

    statuses: tuple[str, ...] = ("queued", "sent", "delivered")
    error_code: int | None = None


class FakeTwilio:
    """The fake Twilio API server. Thread-safe; start it, point the SDK at `url`."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        callback_delay: float = 0.0,
        send_callbacks: bool = True,
        callback_threads: int = 1,
        seed: int | None = None,
    ) -> None:
        self.accounts: dict[str, str] = {DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN}
        self.latency = latency  # seconds added to every answer
        self.callback_delay = callback_delay  # seconds between a message's callbacks
        self.send_callbacks = send_callbacks
        self.messages: list[FakeMessage] = []
        self.faults: deque[Fault] = deque()  # consumed one per create call
        self.lookup_faults: deque[Fault] = deque()  # consumed one per fetch/list call
        self.fault_rate = 0.0  # chaos: the share of create calls that fail at random
        self.fault_kinds: tuple[str, ...] = FAULT_KINDS
        self.outcomes: dict[str, tuple[str, int | None]] = {}  # To -> (final status, code)
        self.callbacks: list[Callback] = []
        self.create_calls = 0
        self.lock = threading.Lock()
        self._by_sid: dict[str, FakeMessage] = {}
        self._rng = random.Random(seed)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._callback_queue: queue.Queue[tuple[float, FakeMessage, str] | None] = queue.Queue()
        # One thread posts a message's callbacks in order; more post faster, in any order.
        self.callback_threads = callback_threads
        self._callback_threads: list[threading.Thread] = []
        self._pending_callbacks = 0
        self._idle = threading.Condition(self.lock)

    # -- life cycle --------------------------------------------------------------------

    @property
    def account_sid(self) -> str:
        return DEFAULT_ACCOUNT_SID

    @property
    def auth_token(self) -> str:
        return self.accounts[DEFAULT_ACCOUNT_SID]

    @property
    def url(self) -> str:
        """The API's base URL (SENDLINE_TWILIO_API_URL)."""
        if self._server is None:
            raise RuntimeError("the fake Twilio is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeTwilio:
        server = Server(("127.0.0.1", 0), make_handler(self))
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="fake-twilio", daemon=True
        )
        self._thread.start()
        self._callback_threads = [
            threading.Thread(target=self._run_callbacks, name="fake-twilio-callbacks", daemon=True)
            for _ in range(max(1, self.callback_threads))
        ]
        for thread in self._callback_threads:
            thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for _ in self._callback_threads:
            self._callback_queue.put(None)
        for thread in self._callback_threads:
            thread.join(timeout=10)
        self._callback_threads = []
        self._server = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_account(self, account_sid: str, auth_token: str) -> None:
        self.accounts[account_sid] = auth_token

    # -- what tests look at ---------------------------------------------------------------

    def messages_to(self, to: str) -> list[FakeMessage]:
        with self.lock:
            return [m for m in self.messages if m.to == to]

    def stats(self) -> dict[str, int]:
        """Counts, also served at `GET /_fake/stats` (a fake in another process)."""
        with self.lock:
            bodies = [(m.to, m.body) for m in self.messages]
            return {
                "messages": len(self.messages),
                "create_calls": self.create_calls,
                "callbacks": len(self.callbacks),
                "duplicates": len(bodies) - len(set(bodies)),
            }

    def wait_for_callbacks(self, timeout: float = 10.0) -> None:
        """Until every status callback due so far was posted (raises on timeout)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending_callbacks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self._pending_callbacks} status callbacks not posted")
                self._idle.wait(left)

    # -- posting to Sendline ----------------------------------------------------------------

    def post_signed(
        self,
        url: str,
        params: Mapping[str, str],
        *,
        token: str | None = None,
        signature: str | None = None,
        signed_url: str | None = None,
    ) -> int:
        """POST `params` form-encoded to `url`, signed as Twilio signs (the token of the
        default account unless given). `signed_url` signs another URL than the one
        posted to (a replay); `signature` overrides the header ("" sends none)."""
        validator = RequestValidator(token or self.auth_token)
        if signature is None:
            signature = validator.compute_signature(signed_url or url, dict(params))
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature:
            headers["X-Twilio-Signature"] = signature
        data = urlencode(dict(params)).encode()
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def inbound_params(
        self, *, from_: str, to: str, body: str, account_sid: str | None = None
    ) -> dict[str, str]:
        """The form of an incoming-message webhook, as Twilio posts it."""
        sid = "SM" + secrets.token_hex(16)
        return {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": body,
            "To": to,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": account_sid or self.account_sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }

    def post_inbound(
        self, url: str, *, from_: str, to: str, body: str, token: str | None = None
    ) -> int:
        """Post a signed inbound text to `url`; returns the HTTP status Sendline answered."""
        return self.post_signed(
            url, self.inbound_params(from_=from_, to=to, body=body), token=token
        )

    def status_params(self, message: FakeMessage, status: str) -> dict[str, str]:
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "MessageStatus": status,
            "AccountSid": message.account_sid,
            "To": message.to,
            "ApiVersion": API_VERSION,
        }
        if message.from_:
            params["From"] = message.from_
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if status in ("undelivered", "failed") and message.error_code:
            params["ErrorCode"] = str(message.error_code)
        return params

    # -- the API ------------------------------------------------------------------------

    def next_fault(self, faults: deque[Fault]) -> Fault | None:
        with self.lock:
            if faults:
                return faults.popleft()
            if faults is self.faults and self.fault_rate and self._rng.random() < self.fault_rate:
                return self._random_fault()
        return None

    def count_create_call(self) -> None:
        with self.lock:
            self.create_calls += 1

    def _random_fault(self) -> Fault:
        kind = self._rng.choice(self.fault_kinds)
        if kind == "429":
            return Fault.too_many(retry_after=0.0)
        if kind == "500":
            return Fault.server_error()
        if kind == "error":
            return Fault.refuse(self._rng.choice((21211, 21610, 21612, 30001)))
        if kind == "slow":
            return Fault.slow(self._rng.uniform(0.05, 0.5))
        return Fault.drop()

    def create(self, account_sid: str, form: Mapping[str, str]) -> FakeMessage:
        to = form.get("To", "")
        now = datetime.now(UTC).replace(microsecond=0)
        message = FakeMessage(
            sid="SM" + secrets.token_hex(16),
            account_sid=account_sid,
            to=to,
            from_=form.get("From") or None,
            messaging_service_sid=form.get("MessagingServiceSid") or None,
            body=form.get("Body", ""),
            status_callback=form.get("StatusCallback") or None,
            date_created=now,
        )
        plan = _Plan()
        if to in self.outcomes:
            final, code = self.outcomes[to]
            plan = _Plan(
                ("queued", "sent", final) if final != "failed" else ("queued", final), code
            )
        message.error_code = plan.error_code
        with self.lock:
            self.messages.append(message)
            self._by_sid[message.sid] = message
            if message.status_callback and self.send_callbacks:
                self._pending_callbacks += len(plan.statuses)
        if message.status_callback and self.send_callbacks:
            start = time.monotonic()
            for index, status in enumerate(plan.statuses):
                due = start + self.callback_delay * (index + 1)
                self._callback_queue.put((due, message, status))
        return message

    def find(self, account_sid: str, sid: str) -> FakeMessage | None:
        with self.lock:
            message = self._by_sid.get(sid)
        return message if message is not None and message.account_sid == account_sid else None

    def search(self, account_sid: str, query: Mapping[str, str]) -> list[FakeMessage]:
        with self.lock:
            found = [m for m in self.messages if m.account_sid == account_sid]
        if "To" in query:
            found = [m for m in found if m.to == query["To"]]
        if "From" in query:
            found = [m for m in found if m.from_ == query["From"]]
        for key, keep in (
            ("DateSent", lambda d, q: d == q),
            ("DateSent<", lambda d, q: d <= q),
            ("DateSent>", lambda d, q: d >= q),
        ):
            if key in query:
                day = query[key][:10]
                found = [
                    m for m in found if m.date_sent and keep(m.date_sent.date().isoformat(), day)
                ]
        found.sort(key=lambda m: m.date_sent or m.date_created, reverse=True)
        return found

    # -- status callbacks ---------------------------------------------------------------

    def _run_callbacks(self) -> None:
        while True:
            item = self._callback_queue.get()
            if item is None:
                return
            due, message, status = item
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._advance(message, status)
            try:
                self._post_status(message, status)
            finally:
                with self._idle:
                    self._pending_callbacks -= 1
                    self._idle.notify_all()

    def _advance(self, message: FakeMessage, status: str) -> None:
        with self.lock:
            message.status = status
            if status in ("sent", "delivered", "undelivered") and message.date_sent is None:
                message.date_sent = datetime.now(UTC).replace(microsecond=0)

    def _post_status(self, message: FakeMessage, status: str) -> None:
        url = message.status_callback or ""
        params = self.status_params(message, status)
        token = self.accounts.get(message.account_sid, "")
        try:
            code = self.post_signed(url, params, token=token)
        except OSError:
            code = 0
        with self.lock:
            self.callbacks.append(Callback(url, params, code))


def signature_for(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The X-Twilio-Signature Twilio would send (for tests building requests by hand)."""
    return str(RequestValidator(token).compute_signature(url, dict(params)))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake in a process of its own (a benchmark's, so the fake's CPU is not the
    sender's): prints `URL ACCOUNT_SID AUTH_TOKEN` on one line, serves until stdin closes.

        python -m tests.fakes.twilio_api --latency 0.1 [--fault-rate 0.2] [--no-callbacks]
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--callback-threads", type=int, default=4)
    parser.add_argument("--no-callbacks", action="store_true")
    args = parser.parse_args(argv)
    fake = FakeTwilio(
        latency=args.latency,
        send_callbacks=not args.no_callbacks,
        callback_threads=args.callback_threads,
        seed=args.seed,
    )
    fake.fault_rate = args.fault_rate
    with fake:
        print(fake.url, fake.account_sid, fake.auth_token, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
