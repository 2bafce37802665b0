"""The sandbox: a simulated carrier inside Sendline, the embedded default provider.

A new user can run everything without a provider account. It behaves like a real
carrier where that matters to the engine:
- it accepts a message and answers with an id ("SM" + 32 hex, Twilio-like), and it
  keeps its own record of what it accepted, committed before it answers (a real carrier
  has the message once it says so, whatever happens to the caller afterwards);
- it polices the sender's rate (messages per second, counted in segments) and answers
  20429 Too Many Requests with a retry-after when the sender keeps going over it;
- a configurable fraction of messages fails with real Twilio error codes: 21211 (invalid
  To) and 21610 (unsubscribed recipient) refuse the send; 30003 (unreachable handset),
  30005 (unknown destination) and 30007 (carrier filtering) are accepted and then come
  back `undelivered` in the delivery receipt, as they do on real networks;
- delivery receipts arrive after a delay, through `poll_receipts` (its "callbacks");
- `unknown_rate` simulates a timeout after the request went out: the message is
  recorded but the call raises UnknownOutcome, which the dispatcher must reconcile;
- test numbers give one outcome every time, whatever the rates (`TEST_NUMBERS`; the
  first two are Twilio's own magic numbers, the rest extend the idea).

Its records live in its own table (`sandbox_store`); its receipts reach the engine
through the provider interface's one hook (`poll_receipts`), like any polled carrier's.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.providers.base import (
    Accepted,
    ApplyReceipts,
    DeliveryReport,
    OutboundSms,
    PermanentError,
    Provider,
    ProviderError,
    ProviderRecord,
    TransientError,
    UnknownOutcome,
)
from sendline.providers.sandbox_store import (
    INSERT,
    CarrierLog,
    SandboxMessage,
    carrier_engine,
    finish,
    outbox,
)
from sendline.store import ratelimit
from sendline.store.types import utcnow

# Real Twilio error codes and what they mean.
ERRORS: dict[str, str] = {
    "20429": "Too Many Requests",
    "21211": "Invalid 'To' Phone Number",
    "21610": "Attempt to send to unsubscribed recipient",
    "30003": "Unreachable destination handset",
    "30005": "Unknown destination handset",
    "30007": "Message filtered by the carrier",
}
# Destination -> what always happens to it. "lost": accepted, answer lost (UnknownOutcome);
# "unsent": timeout before the carrier got it; "unsure": lost, and lookups cannot tell.
TEST_NUMBERS: dict[str, str] = {
    "+15005550001": "21211",
    "+15005550004": "21610",
    "+15005550029": "20429",
    "+15005550030": "30003",
    "+15005550031": "30005",
    "+15005550032": "30007",
    "+15005550090": "lost",
    "+15005550091": "unsent",
    "+15005550092": "unsure",
}
# How a failure splits, given that one happens: mostly delivery-time, as on real networks.
SEND_PERMANENT = (("21211", 0.10), ("21610", 0.05))
SEND_TRANSIENT = (("20429", 0.15),)
DELIVERY = (("30003", 0.30), ("30005", 0.20), ("30007", 0.20))
# A receipt whose message we cannot match yet (the sender has not recorded our id) is
# retried, as carriers retry status callbacks, for this long.
REPORT_RETRY_WINDOW = timedelta(minutes=10)
REPORT_BATCH = 500
# The carrier checks the form of the number (the pipeline already held numbers that are
# not valid, R8); a full libphonenumber parse here would cost more than the send.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class SandboxProvider(Provider):
    """The simulated carrier. Thread-safe; any number of processes may share its tables."""

    name = "sandbox"
    # A window is one transaction on the carrier's log, in process, with no network in
    # between: as large as a dispatcher batch. At 100 (a real SMPP bind's order) its
    # commits cost a blast 3-8% on SQLite.
    window_size = 500

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        failure_rate: float = 0.0,
        unknown_rate: float = 0.0,
        mps: float | None = None,
        burst: int | None = None,
        report_delay: timedelta = timedelta(seconds=2),
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not 0.0 <= failure_rate <= 1.0 or not 0.0 <= unknown_rate <= 1.0:
            raise ValueError("failure_rate and unknown_rate are fractions from 0 to 1")
        self._session_factory = session_factory
        self.failure_rate = failure_rate
        self.unknown_rate = unknown_rate
        self.mps = mps
        # Carriers absorb a short burst (a second's worth here) and refuse a sustained
        # excess: a sender pacing itself at the rate is never refused for timer jitter.
        self.burst = burst or max(1, int(mps or 1))
        self.report_delay = report_delay
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        # Ids from their own generator, seeded from the OS: never from a test's seeded
        # `rng` (two sandboxes would hand out the same ids), and without uuid4's system
        # call per message.
        self._ids = random.Random()
        self._clock = clock
        engine = carrier_engine(session_factory)
        self._carrier = CarrierLog(engine) if engine is not None else None

    # -- the provider interface ----------------------------------------------------

    def send(self, sms: OutboundSms) -> Accepted:
        [answer] = self.send_window([sms])
        if isinstance(answer, ProviderError):
            raise answer
        return answer

    def send_window(self, messages: Sequence[OutboundSms]) -> list[Accepted | ProviderError]:
        """Several messages in one exchange, like an SMPP window: each is answered on its
        own, and the records of those accepted are committed together before any answer."""
        now = self._clock()
        answers: list[Accepted | ProviderError] = []
        records: list[dict[str, Any]] = []
        lost: set[str] = set()
        for sms in messages:
            try:
                failure, answer_lost = self._admit(sms)
            except ProviderError as exc:
                answers.append(exc)
                continue
            record = self._new_record(sms, failure, now)
            records.append(record)
            answers.append(Accepted(record["provider_id"]))
            if answer_lost:
                lost.add(record["provider_id"])
        if records:
            self._record(records)
        return [
            UnknownOutcome("timeout", "the sandbox accepted the message, the answer was lost")
            if isinstance(answer, Accepted) and answer.provider_id in lost
            else answer
            for answer in answers
        ]

    def lookup(self, sms: OutboundSms) -> ProviderRecord | None:
        if TEST_NUMBERS.get(sms.to) == "unsure":
            raise UnknownOutcome("timeout", "the sandbox's lookup API timed out")
        with self._session_factory() as session:
            record = session.scalars(
                select(SandboxMessage)
                .where(SandboxMessage.message_ref == sms.message_id)
                .order_by(SandboxMessage.id)
            ).first()
        if record is None:
            return None
        final = record.status != "sent"
        return ProviderRecord(
            record.provider_id, record.status, record.error_code if final else None
        )

    # -- receipts ------------------------------------------------------------------

    def deliver_reports(self, now: datetime) -> list[DeliveryReport]:
        """Mark every due receipt as sent and return them (as a webhook would carry them)."""
        with self._session_factory.begin() as session:
            due = self._due(session, now)
            finish(session, [row.id for row in due], reported=True)
        return [_report(row, now) for row in due]

    def poll_receipts(self, now: datetime, apply: ApplyReceipts) -> int:
        """Hand the due receipts to the engine (`apply`); returns how many it applied.

        One transaction, the carrier's own session: a receipt is marked reported only
        together with its effect. One whose message does not carry our id yet (the sender
        has not recorded its outcome) is retried later, as carriers retry status
        callbacks.
        """
        with self._session_factory.begin() as session:
            due = self._due(session, now)
            if not due:
                return 0
            matched = apply([_report(row, now) for row in due], now, session)
            done = [
                row.id
                for row in due
                if row.provider_id in matched or now - row.accepted_at > REPORT_RETRY_WINDOW
            ]
            finish(session, done, reported=True)
            retry = sorted({row.id for row in due} - set(done))
            finish(session, retry, reported=False, due_at=now + self.report_delay)
        return len(matched)

    def outbox(self, limit: int = 50) -> list[SandboxMessage]:
        """What the sandbox "sent", newest first."""
        with self._session_factory() as session:
            return outbox(session, limit)

    def close(self) -> None:
        """Close the carrier's own connections."""
        if self._carrier is not None:
            self._carrier.engine.dispose()

    # -- internals -----------------------------------------------------------------

    def _admit(self, sms: OutboundSms) -> tuple[str | None, bool]:
        """Whether the carrier takes this message: raises its refusal, or returns the
        delivery failure it will meet (None: none) and whether the answer gets lost."""
        if self.mps is not None:
            key = f"sandbox:{sms.sender or 'default'}"
            wait = ratelimit.try_acquire(
                self._session_factory, key, sms.segments, self.mps, self.burst
            )
            if wait > 0:
                raise TransientError("20429", ERRORS["20429"], retry_after=wait)
        failure, lost = self._roll(sms.to)
        if failure == "unsent":
            raise UnknownOutcome("timeout", "the request timed out before reaching the sandbox")
        if failure == "20429":
            raise TransientError(failure, ERRORS[failure])
        if failure in ("21211", "21610"):
            raise PermanentError(failure, ERRORS[failure])
        if not _E164.fullmatch(sms.to):
            raise PermanentError("21211", f"{ERRORS['21211']}: {sms.to}")
        return failure, lost

    def _new_record(self, sms: OutboundSms, failure: str | None, now: datetime) -> dict[str, Any]:
        return {
            "provider_id": self._new_id(now),
            "message_ref": sms.message_id,
            "sender": sms.sender,
            "to": sms.to,
            "body": sms.body,
            "segments": sms.segments,
            "status": "sent",
            # Decided now, revealed by the receipt: the handset is unreachable whether
            # or not anyone has asked yet.
            "error_code": failure,
            "accepted_at": now,
            "report_due_at": now + self.report_delay,
            "reported": False,
        }

    def _new_id(self, now: datetime) -> str:
        """A Twilio-shaped id ("SM" and 32 hex digits) that sorts by time: 48 bits of
        milliseconds, then 80 random bits.

        Why time first: `messages.provider_id` has a unique index (receipts find their
        message through it). Purely random ids land on random pages of that index, so
        every batch of outcomes rewrote hundreds of pages; ids that grow with time are
        appended to its last pages, like an autoincrement key."""
        millis = int(now.timestamp() * 1000) & 0xFFFF_FFFF_FFFF
        return f"SM{millis:012x}{self._ids.getrandbits(80):020x}"

    def _record(self, records: list[dict[str, Any]]) -> None:
        """Keep the carrier's records, committed before the carrier answers."""
        if self._carrier is not None:
            self._carrier.insert(records)
            return
        with self._session_factory.begin() as session:
            session.execute(INSERT, records)

    def _roll(self, to: str) -> tuple[str | None, bool]:
        """The failure code this message meets (None: delivered), and whether its
        answer is lost in transit."""
        forced = TEST_NUMBERS.get(to)
        if forced is not None:
            if forced in ("lost", "unsure"):
                return None, True
            return forced, False
        with self._rng_lock:
            failing = self._rng.random() < self.failure_rate
            pick = self._rng.random()
            lost = self._rng.random() < self.unknown_rate
        if not failing:
            return None, lost
        for code, share in (*SEND_PERMANENT, *SEND_TRANSIENT, *DELIVERY):
            if pick < share:
                return code, lost
            pick -= share
        return DELIVERY[-1][0], lost

    def _due(self, session: Session, now: datetime) -> Sequence[Any]:
        # SKIP LOCKED: several workers may tick at once; each receipt goes out once.
        return session.execute(
            select(
                SandboxMessage.id,
                SandboxMessage.provider_id,
                SandboxMessage.error_code,
                SandboxMessage.accepted_at,
            )
            .where(SandboxMessage.reported.is_(False), SandboxMessage.report_due_at <= now)
            .order_by(SandboxMessage.report_due_at)
            .limit(REPORT_BATCH)
            .with_for_update(skip_locked=True)
        ).all()


def _report(row: Any, now: datetime) -> DeliveryReport:
    status = "undelivered" if row.error_code else "delivered"
    return DeliveryReport(row.provider_id, status, row.error_code, now)
