"""The chaos run of issue 13: 2,000 messages to 500 contacts, the fake Twilio failing a
fifth of the calls at random across every fault kind (429, 500, refusals including
21610, slow answers, connections dropped after it stored the message), two workers on
PostgreSQL (one on SQLite), callbacks coming back. Every message must end
settled (delivered, or failed with a reason), and none may reach Twilio twice (R17)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendline.engine.worker import Worker, WorkerOptions
from sendline.store.credits import Credits
from sendline.store.engine_models import Message
from sendline.store.types import utcnow
from tests.engine.factories import assert_ledger_ok, make_contact, queue_many
from tests.providers.conftest import TwilioSite

COUNT = 2000
SETTLED = {"delivered", "failed", "canceled"}  # canceled: a 21610 opted the contact out


def _statuses(session: Session) -> list[tuple[int, str, str | None, str | None]]:
    rows = session.execute(
        select(Message.id, Message.status, Message.error_code, Message.body).order_by(Message.id)
    ).all()
    session.commit()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def test_it_settles_every_message_once_while_twilio_fails_at_random(
    twilio_site: TwilioSite, session: Session, backend: str
) -> None:
    fake = twilio_site.fake
    fake.fault_rate = 0.2
    contacts = [twilio_site.contact] + [
        make_contact(session, twilio_site.account, f"+1415867{i:04d}") for i in range(499)
    ]
    Credits(session, twilio_site.account.id).purchase(COUNT)
    queue_many(session, twilio_site.account, contacts, COUNT, due_at=utcnow())
    # Two workers share PostgreSQL; SQLite has one writer, so one worker.
    workers = [
        Worker(
            twilio_site.sessions,
            twilio_site.provider,
            WorkerOptions(worker_id=f"w{n}", lease=timedelta(seconds=3), reconcile_every=0.5),
        )
        for n in range(2 if backend == "postgresql" else 1)
    ]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if all(status in SETTLED for _, status, _, _ in _statuses(session)):
                break
            time.sleep(0.5)
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(timeout=30)
    rows = _statuses(session)
    assert Counter(status for _, status, _, _ in rows).keys() <= SETTLED, Counter(
        status for _, status, _, _ in rows
    )
    assert all(code for _, status, code, _ in rows if status == "failed")
    at_twilio = Counter(m.body for m in fake.messages)
    assert max(at_twilio.values()) == 1  # never sent twice
    delivered = {body for _, status, _, body in rows if status == "delivered"}
    assert delivered <= set(at_twilio)
    assert fake.create_calls > COUNT  # the faults were there, and retried
    assert_ledger_ok(session, twilio_site.account.id)
