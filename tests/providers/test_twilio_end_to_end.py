"""Twilio end to end on both databases: the real worker sends through the real SDK to the
fake Twilio API, whose signed status callbacks reach a live `sendline serve` app."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendline.engine import outbox
from sendline.store.engine_models import Message
from sendline.store.types import utcnow
from tests.engine.factories import assert_ledger_ok, message, queue_message
from tests.fakes.twilio_api import Fault
from tests.providers.conftest import TwilioSite


def _wait_for(session: Session, message_id: int, status: str, timeout: float = 10.0) -> Message:
    deadline = time.monotonic() + timeout
    while True:
        found = message(session, message_id)
        if found.status == status or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _queue(session: Session, site: TwilioSite, body: str = "Spring sale: 20% off") -> int:
    return queue_message(
        session, site.account, site.contact, body=body, due_at=utcnow(), created_at=utcnow()
    ).id


def test_it_takes_a_message_from_the_queue_to_delivered(
    twilio_site: TwilioSite, session: Session
) -> None:
    message_id = _queue(session, twilio_site)
    assert twilio_site.worker().step() >= 1
    sent = message(session, message_id)  # its callbacks may have arrived already
    [at_twilio] = twilio_site.fake.messages
    assert (sent.provider, sent.provider_id) == (f"twilio:{twilio_site.config_id}", at_twilio.sid)
    assert sent.status in ("sent", "delivered")
    twilio_site.fake.wait_for_callbacks()
    done = _wait_for(session, message_id, "delivered")
    assert done.status == "delivered" and done.delivered_at is not None
    assert [c.status_code for c in twilio_site.fake.callbacks] == [204, 204, 204]
    assert_ledger_ok(session, twilio_site.account.id)


def test_it_stores_the_error_code_of_an_undelivered_message(
    twilio_site: TwilioSite, session: Session
) -> None:
    twilio_site.fake.outcomes[twilio_site.contact.phone_e164 or ""] = ("undelivered", 30003)
    message_id = _queue(session, twilio_site)
    twilio_site.worker().step()
    twilio_site.fake.wait_for_callbacks()
    done = _wait_for(session, message_id, "undelivered")
    assert (done.status, done.error_code) == ("undelivered", "30003")
    assert_ledger_ok(session, twilio_site.account.id)


def test_it_never_moves_a_delivered_message_back_on_a_late_callback(
    twilio_site: TwilioSite, session: Session
) -> None:
    message_id = _queue(session, twilio_site)
    twilio_site.worker().step()
    twilio_site.fake.wait_for_callbacks()
    _wait_for(session, message_id, "delivered")
    [at_twilio] = twilio_site.fake.messages
    for status in ("sent", "undelivered", "delivered"):  # late, contradicting, repeated
        params = twilio_site.fake.status_params(at_twilio, status)
        url = f"{twilio_site.status_url}?message_id={message_id}"
        assert twilio_site.fake.post_signed(url, params) == 204
    assert message(session, message_id).status == "delivered"
    assert_ledger_ok(session, twilio_site.account.id)


def test_it_fails_a_message_twilio_refuses_and_releases_its_credits(
    twilio_site: TwilioSite, session: Session
) -> None:
    twilio_site.fake.faults.append(Fault.refuse(21211))
    message_id = _queue(session, twilio_site)
    twilio_site.worker().step()
    failed = message(session, message_id)
    assert (failed.status, failed.error_code) == ("failed", "21211")
    assert twilio_site.fake.messages == []
    assert_ledger_ok(session, twilio_site.account.id)


def test_it_fails_a_message_to_a_recipient_who_stopped_at_the_carrier(
    twilio_site: TwilioSite, session: Session
) -> None:
    twilio_site.fake.faults.append(Fault.refuse(21610))
    message_id = _queue(session, twilio_site)
    twilio_site.worker().step()
    assert (message(session, message_id).status, message(session, message_id).error_code) == (
        "failed",
        "21610",
    )
    assert_ledger_ok(session, twilio_site.account.id)


def test_it_retries_a_rate_limited_message_after_twilios_retry_after(
    twilio_site: TwilioSite, session: Session
) -> None:
    twilio_site.fake.faults.extend([Fault.too_many(retry_after=30), Fault.server_error()])
    first, second = _queue(session, twilio_site, "one"), _queue(session, twilio_site, "two")
    before = utcnow()
    twilio_site.worker().step()
    # The two calls are in flight together, so either message may meet either fault.
    by_code = {m.error_code: m for m in (message(session, first), message(session, second))}
    assert set(by_code) == {"20429", "500"}
    limited, down = by_code["20429"], by_code["500"]
    assert (limited.status, down.status) == ("queued", "queued")
    assert limited.due_at >= before + timedelta(seconds=29)
    assert twilio_site.fake.messages == []
    assert_ledger_ok(session, twilio_site.account.id)


def test_it_reconciles_a_timeout_after_twilio_accepted_without_sending_twice(
    twilio_site: TwilioSite, session: Session
) -> None:
    fake = twilio_site.fake
    fake.send_callbacks = False  # only the lookup can tell what happened
    fake.faults.append(Fault.slow(5.0))  # the provider's timeout is 2 s
    message_id = _queue(session, twilio_site)
    worker = twilio_site.worker()
    worker.step()
    assert message(session, message_id).status == "unknown"
    for _ in range(3):  # later passes and reconciliations never send it again
        worker.step()
        worker.dispatcher.reconcile(now=utcnow() + timedelta(minutes=5))
    settled = message(session, message_id)
    [at_twilio] = fake.messages
    assert (settled.status, settled.provider_id) == ("sent", at_twilio.sid)
    assert settled.provider == f"twilio:{twilio_site.config_id}"
    assert fake.create_calls == 1
    assert_ledger_ok(session, twilio_site.account.id)


def test_it_settles_an_unknown_message_from_its_status_callback(
    twilio_site: TwilioSite, session: Session
) -> None:
    twilio_site.fake.faults.append(Fault.drop())
    message_id = _queue(session, twilio_site)
    twilio_site.worker().step()
    twilio_site.fake.wait_for_callbacks()
    done = _wait_for(session, message_id, "delivered")
    [at_twilio] = twilio_site.fake.messages
    assert (done.status, done.provider_id) == ("delivered", at_twilio.sid)
    assert twilio_site.fake.create_calls == 1
    assert_ledger_ok(session, twilio_site.account.id)


def test_it_reconciles_nothing_as_sent_when_twilio_never_got_it(
    twilio_site: TwilioSite, session: Session
) -> None:
    message_id = _queue(session, twilio_site)
    # A worker that crashed after its claim: the row is `sending`, Twilio never had it.
    with twilio_site.sessions.begin() as own:
        assert len(outbox.claim_due(own, "dead", utcnow(), 10)) == 1
    twilio_site.worker().dispatcher.reconcile(now=utcnow() + timedelta(minutes=5))
    requeued = message(session, message_id)
    assert requeued.status == "queued" and requeued.provider_id is None
    assert twilio_site.fake.messages == []
    assert session.scalar(select(Message.attempts).where(Message.id == message_id)) == 1
    session.commit()
