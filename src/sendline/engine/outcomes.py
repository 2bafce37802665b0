"""What the dispatcher makes of a provider's answer beyond writing it: when a message
refused transiently is due again (backoff), and a carrier's opt-out (R13)."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from sendline.engine.inbound import cancel_pending
from sendline.engine.outbox import Job, Outcome
from sendline.errors import SendlineError
from sendline.providers.base import TransientError
from sendline.store.consent import MAX_SOURCE, Consent

log = logging.getLogger(__name__)

BACKOFF_BASE = 2.0  # seconds; doubled per attempt, full jitter
BACKOFF_CAP = 15 * 60.0


def retry_outcome(
    job: Job, exc: TransientError, now: datetime, rng: random.Random, retry_deadline: timedelta
) -> Outcome:
    """Back to the queue after a backoff (at least the provider's `retry_after`), or
    failed when that would land past the message's deadline."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, job.attempts - 1))
    delay = rng.uniform(0.0, ceiling)  # full jitter: retries do not stampede
    if exc.retry_after:
        delay = max(delay, exc.retry_after)
    due = now + timedelta(seconds=delay)
    deadline = job.deadline_at or job.created_at + retry_deadline
    if due > deadline:
        detail = f"gave up after {job.attempts} attempts: {exc}"
        return Outcome(job, "failed", error_code=exc.code, detail=detail)
    return Outcome(job, "queued", error_code=exc.code, detail=str(exc), due_at=due)


def record_carrier_opt_outs(session: Session, outcomes: Sequence[Outcome], now: datetime) -> int:
    """R13 for a carrier's refusal saying the recipient opted out with it (Twilio's
    21610: they texted STOP to the carrier itself): the contact's opt-out is recorded as
    a consent event (a keyword opt-out, the carrier's code as its source) and its other
    pending messages are canceled, as an inbound STOP does (`cancel_pending`). Claimed
    ones are caught by the dispatcher's consent check. Returns how many contacts."""
    done: set[int] = set()
    for outcome in outcomes:
        job = outcome.job
        if job.contact_id is None or job.contact_id in done:
            continue
        done.add(job.contact_id)
        source = f"carrier refusal {outcome.error_code}: the recipient opted out with the carrier"
        try:
            # A savepoint: a contact erased meanwhile must not undo the batch's outcomes.
            with session.begin_nested():
                Consent(session, job.account_id).record(
                    job.contact_id,
                    "opt_out",
                    "keyword",
                    source=source[:MAX_SOURCE],
                    occurred_at=now,
                )
                cancel_pending(session, job.account_id, job.contact_id, now)
        except SendlineError as exc:
            log.warning("opt-out of contact %s not recorded: %s", job.contact_id, exc)
    return len(done)
