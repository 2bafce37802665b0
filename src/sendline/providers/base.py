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

Everything the engine may ask of a provider is on `Provider`, with a default where a
provider may lack the feature: no window (`window_size` 1, `send_window` one call per
message), no receipts to poll (a provider that pushes them to a webhook). So the engine
never asks which provider it has. Delivery receipts reach the engine through one hook,
`ApplyReceipts`, whichever way they travel: the worker hands it to `poll_receipts`, and
the webhook (a pushed receipt) will call the same function. Providers never import the
engine: they report, the engine applies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session


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
    """The provider refused the message for good.

    `opted_out`: the refusal says the recipient opted out with the carrier (Twilio's
    21610, a STOP sent to the carrier directly). The engine then records the opt-out
    (R13): the adapter knows the carrier's codes, the engine what an opt-out means."""

    def __init__(self, code: str, detail: str = "", *, opted_out: bool = False) -> None:
        super().__init__(code, detail)
        self.opted_out = opted_out


class TransientError(ProviderError):
    """Not sent this time; safe to retry later."""

    def __init__(self, code: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(code, detail)
        self.retry_after = retry_after


class UnknownOutcome(ProviderError):
    """The request may have reached the provider; reconcile before anything else."""


Answer = Accepted | ProviderError


class ApplyReceipts(Protocol):
    """The engine's side of delivery receipts: applies a batch, returns the provider ids
    that matched a message (the others are the provider's to deliver again later).

    A provider whose receipts are rows in Sendline's own database (the sandbox) passes
    its session, so a receipt is marked done in the same transaction as its effect;
    without one, the engine applies them in a transaction of its own."""

    def __call__(
        self, reports: Sequence[DeliveryReport], now: datetime, session: Session | None = None
    ) -> set[str]: ...


class Provider(ABC):
    """A carrier adapter. `send` and `lookup` are required; the rest has defaults."""

    name: str
    # How many messages one exchange may carry: the carrier's to say (an SMPP bind's
    # window, or the sandbox's own limit). 1: one call per message.
    window_size: int = 1

    @abstractmethod
    def send(self, sms: OutboundSms) -> Accepted:
        """Hand one message to the provider; raise a ProviderError subclass otherwise."""

    @abstractmethod
    def lookup(self, sms: OutboundSms) -> ProviderRecord | None:
        """Find a message we may have handed over; None when the provider never got it.

        Raises `UnknownOutcome` when the provider cannot tell either way (then the
        message stays `unknown` until a status callback or a later lookup settles it).
        """

    def send_window(self, messages: Sequence[OutboundSms]) -> list[Answer]:
        """Hand several messages over in one exchange; each is answered on its own (an
        error instance in its place). Raising means no answer at all: all unknown.

        The default sends them one by one; an error that is no ProviderError may have
        landed, so it answers UnknownOutcome (reconciled, never resent)."""
        answers: list[Answer] = []
        for sms in messages:
            try:
                answers.append(self.send(sms))
            except ProviderError as exc:
                answers.append(exc)
            except Exception as exc:  # noqa: BLE001 - a call that blew up may have landed
                answers.append(UnknownOutcome("error", f"provider call raised {exc!r}"[:500]))
        return answers

    def poll_receipts(self, now: datetime, apply: ApplyReceipts) -> int:
        """Fetch the delivery receipts due by `now` and hand them to `apply`; returns
        how many were applied. A provider that pushes its receipts to a webhook has
        none to poll (the default)."""
        del now, apply
        return 0


class ProviderDirectory(Protocol):
    """Which provider sends an account's messages: the dispatcher's only way to a carrier.

    `chain` is the account's providers in failover order (never empty: an account with
    none configured has the default, the sandbox). `by_name` finds the provider a message
    was handed to (`messages.provider` holds its `name`), because a message is handed to
    one provider ever, and only that one can reconcile it (R17)."""

    def chain(self, account_id: int) -> Sequence[Provider]: ...

    def by_name(self, name: str) -> Provider | None: ...

    def all(self) -> Sequence[Provider]:
        """Every provider known now (the worker polls each for receipts)."""
        ...


class OneProvider:
    """A directory of one provider for every account: the embedded default, and tests."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    def chain(self, account_id: int) -> Sequence[Provider]:
        del account_id
        return (self.provider,)

    def by_name(self, name: str) -> Provider | None:
        return self.provider if name == self.provider.name else None

    def all(self) -> Sequence[Provider]:
        return (self.provider,)
