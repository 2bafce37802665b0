"""An in-process carrier for the engine's tests, with fault injection: answers scripted
call by call, a latency or a gate each call waits on, and thread-safe counters (calls,
calls in flight at once, what it accepted), so a test asserts exact counts without a
network. `Chain` is a directory giving every account the same providers in order."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime

from sendline.providers.base import (
    Accepted,
    ApplyReceipts,
    OutboundSms,
    PermanentError,
    Provider,
    ProviderRecord,
    TransientError,
    UnknownOutcome,
)

# What a call does, by name:
# ok: accepted | transient: refused, retry (never accepted) | permanent: refused for good
# opted_out: 21610, the recipient opted out with the carrier | lost: accepted, answer
# lost (UnknownOutcome) | timeout: never reached it, but the caller cannot know (Unknown)
ANSWERS = ("ok", "transient", "permanent", "opted_out", "lost", "timeout")


class ScriptedProvider(Provider):
    def __init__(
        self,
        name: str,
        script: Iterable[str] = (),
        *,
        then: str = "ok",
        latency: float = 0.0,
        gate: threading.Event | None = None,
        lookup_unsure: bool = False,
    ) -> None:
        self.name = name
        self.window_size = 1
        self.script: deque[str] = deque(script)
        self.then = then  # every call's answer once the script is used up
        self.latency = latency
        self.gate = gate
        self.lookup_unsure = lookup_unsure  # its lookups cannot tell (UnknownOutcome)
        self._lock = threading.Lock()
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lookups = 0
        self.polls = 0
        self.accepted: dict[int, str] = {}  # our message id -> its provider id

    def send(self, sms: OutboundSms) -> Accepted:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            answer = self.script.popleft() if self.script else self.then
        try:
            if self.gate is not None:
                assert self.gate.wait(timeout=30), "the test never opened the gate"
            if self.latency:
                time.sleep(self.latency)
            return self._answer(sms, answer)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, sms: OutboundSms, answer: str) -> Accepted:
        if answer in ("ok", "lost"):
            with self._lock:
                provider_id = self.accepted.setdefault(
                    sms.message_id, f"{self.name}-{sms.message_id}"
                )
            if answer == "lost":
                raise UnknownOutcome("timeout", "accepted, the answer was lost")
            return Accepted(provider_id)
        if answer == "transient":
            raise TransientError("503", "service unavailable")
        if answer == "permanent":
            raise PermanentError("21211", "invalid 'To' number")
        if answer == "opted_out":
            raise PermanentError("21610", "the recipient replied STOP", opted_out=True)
        assert answer == "timeout", f"unknown scripted answer {answer!r}"
        raise UnknownOutcome("timeout", "the request timed out")

    def lookup(self, sms: OutboundSms) -> ProviderRecord | None:
        with self._lock:
            self.lookups += 1
            provider_id = self.accepted.get(sms.message_id)
        if self.lookup_unsure:
            raise UnknownOutcome("timeout", "the lookup timed out")
        return ProviderRecord(provider_id, "sent") if provider_id else None

    def poll_receipts(self, now: datetime, apply: ApplyReceipts) -> int:
        del now, apply
        with self._lock:
            self.polls += 1
        return 0


class Chain:
    """A `ProviderDirectory` giving every account the same providers, in failover order."""

    def __init__(self, *providers: Provider) -> None:
        self.providers = providers

    def chain(self, account_id: int) -> Sequence[Provider]:
        del account_id
        return self.providers

    def by_name(self, name: str) -> Provider | None:
        return next((p for p in self.providers if p.name == name), None)

    def all(self) -> Sequence[Provider]:
        return self.providers


def handed_to_both(*providers: ScriptedProvider) -> set[int]:
    """Message ids more than one provider accepted (must be none: R17)."""
    seen: set[int] = set()
    twice: set[int] = set()
    for provider in providers:
        twice |= seen & provider.accepted.keys()
        seen |= provider.accepted.keys()
    return twice
