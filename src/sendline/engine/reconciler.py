"""Reconciliation (R17): settling messages whose provider call had no known outcome.

`sending` rows whose worker died (claim older than the lease, or heartbeat expired) and
`unknown` ones are taken over and looked up at the provider they were handed to
(`messages.provider`), that one only: a message is handed to at most one provider, and
another provider not having it proves nothing. Found: adopt its id and status, charge.
Not found: back to the queue (safe: a worker stops calling at half its lease, so the
dead one cannot still be calling). Lookup unsure: stays `unknown`, looked up again a
lease later.

A row a worker died with before recording its outcome has no provider recorded (it is
written with the outcome, in the batch's transaction: writing it before each call would
cost a write per message). Its account's chain is asked, provider by provider: found at
one, it is adopted there; unsure at any, it stays unknown; only when every one says it
never got it does it go back to the queue.

The deadline (SENDLINE_UNCONFIRMED_AFTER): a message still unknown that long after its
outcome became unknown (Twilio has no idempotency key: a lookup may never tell, and the
status callback may never come) ends `failed` with reason `unconfirmed`, its credits
released. Never resent. A message whose provider is no longer configured cannot be
looked up, and ends the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from sendline.engine import outbox
from sendline.engine.outbox import Job
from sendline.providers.base import ProviderDirectory, ProviderRecord, UnknownOutcome

log = logging.getLogger(__name__)

UNCONFIRMED = "unconfirmed"


class Reconciler:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        directory: ProviderDirectory,
        *,
        worker_id: str,
        lease: timedelta,
        batch_size: int,
        unconfirmed_after: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._session_factory = session_factory
        self.directory = directory
        self.worker_id = worker_id
        self.lease = lease
        self.batch_size = batch_size
        self.unconfirmed_after = unconfirmed_after
        self._clock = clock

    def reconcile(self, now: datetime | None = None) -> int:
        """Take over a batch of messages whose outcome is unknown and settle what the
        lookups (or the deadline) decide; returns how many were settled."""
        now = now or self._clock()
        with self._session_factory.begin() as session:
            jobs = outbox.claim_stale(session, self.worker_id, now, self.lease, self.batch_size)
        found: list[tuple[Job, str, ProviderRecord | None]] = []
        expired: list[int] = []
        for job in jobs:
            looked = self.look_up(job)
            if looked is not None:
                found.append((job, *looked))
            elif now - (job.unknown_since or now) >= self.unconfirmed_after:
                expired.append(job.id)
        if not found and not expired:
            return 0
        detail = (
            f"{UNCONFIRMED}: no lookup or status callback confirmed it within "
            f"{self.unconfirmed_after.total_seconds():.0f} s (R17: never resent)"
        )
        with self._session_factory.begin() as session:
            settled = sum(
                outbox.settle_lookup(session, self.worker_id, name, job, record, now)
                for job, name, record in found
            )
            return settled + outbox.give_up(
                session, self.worker_id, expired, UNCONFIRMED, detail, now
            )

    def look_up(self, job: Job) -> tuple[str, ProviderRecord | None] | None:
        """(the provider, what it knows of the message), or None when unsure."""
        if job.provider is not None:
            provider = self.directory.by_name(job.provider)
            candidates = [provider] if provider is not None else []
        else:
            candidates = list(self.directory.chain(job.account_id))
        for provider in candidates:
            try:
                record = provider.lookup(job.sms())
            except UnknownOutcome:
                return None
            except Exception:  # noqa: BLE001 - same as unsure: keep it unknown, try later
                log.exception("lookup of message %s at %s failed", job.id, provider.name)
                return None
            if record is not None:
                return provider.name, record
        if not candidates:
            return None  # its provider is gone: nobody can tell
        return candidates[0].name, None
