"""The provider interface: the only thing the dispatcher knows about carriers.

An adapter turns its provider's answers into one of three outcomes, because each needs
a different, safe reaction:
- `Accepted`: the provider has the message; charge the reserved credits.
- `PermanentError`: it will never be sent (bad number, blocked, ...); fail the message
  and release the credits. Retrying would only repeat the refusal.
- `TransientError`: not sent this time (rate limited, provider down); retry later
  with backoff, up to a deadline.
- `UnknownOutcome`: the call may or may not have reached the provider (timeout,
  connection reset after the request went out). Sending again could text the person
  twice (R17), so the message is reconciled with `lookup`, never blindly resent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutboundSms:
    message_id: int  # ours; adapters pass it to the provider as a reference when they can
    to: str  # E.164
    sender: str | None  # E.164 from-number, or None for the provider's default
    body: str
    segments: int


@dataclass(frozen=True, slots=True)
class Accepted:
    provider_id: str


@dataclass(frozen=True, slots=True)
class ProviderRecord:
    """What the provider knows of a message we may have sent (for reconciliation)."""

    provider_id: str
    status: str  # one of Sendline's statuses: sent, delivered, undelivered, failed
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A status callback (delivery receipt), whatever its transport."""

    provider_id: str
    status: str  # sent | delivered | undelivered | failed
    error_code: str | None = None
    occurred_at: datetime | None = None


class ProviderError(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class PermanentError(ProviderError):
    """The provider refused the message for good."""


class TransientError(ProviderError):
    """Not sent this time; safe to retry later."""

    def __init__(self, code: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(code, detail)
        self.retry_after = retry_after


class UnknownOutcome(ProviderError):
    """The request may have reached the provider; reconcile before anything else."""


class Provider(Protocol):
    name: str

    def send(self, sms: OutboundSms) -> Accepted:
        """Hand one message to the provider; raise a ProviderError subclass otherwise."""
        ...

    def lookup(self, sms: OutboundSms) -> ProviderRecord | None:
        """Find a message we may have handed over; None when the provider never got it.

        Raises `UnknownOutcome` when the provider cannot tell either way (then the
        message stays `unknown` until a status callback or a later lookup settles it).
        """
        ...
