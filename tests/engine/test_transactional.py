"""Transactional messages (issue 12 #10): order and shipping texts skip marketing quiet
hours (R14) and the frequency cap (R15), are not counted toward it, and still need
consent (R4, and R13 right before the provider call) and carry the STOP clause (R11).
Both databases, the real pipeline, dispatcher and sandbox carrier."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.dispatcher import Dispatcher
from sendline.engine.pipeline import SmsRequest
from sendline.providers.sandbox import SandboxProvider
from sendline.store.consent import Consent
from sendline.store.engine_models import Message
from tests.engine.automation_factories import account, contact
from tests.engine.factories import assert_ledger_ok
from tests.engine.queueing import queue_one

NIGHT = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # 23:00 in San Francisco
MORNING = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # 08:00 there: the window opens
SHIPPED = SmsRequest("Your order shipped", transactional=True)


@pytest.fixture
def sandbox(session_factory: sessionmaker[Session]) -> Iterator[SandboxProvider]:
    provider = SandboxProvider(session_factory, rng=random.Random(1), clock=lambda: NIGHT)
    yield provider
    provider.close()


def _at_night(session_factory: sessionmaker[Session], sandbox: SandboxProvider) -> Dispatcher:
    return Dispatcher(session_factory, sandbox, worker_id="w1", clock=lambda: NIGHT)


def _status(session: Session, message_id: int) -> str:
    found = session.get(Message, message_id, populate_existing=True)
    assert found is not None
    session.commit()
    return found.status


def test_it_sends_a_transactional_message_at_night_and_a_marketing_one_waits(
    session: Session, session_factory: sessionmaker[Session], sandbox: SandboxProvider
) -> None:
    owner = account(session)  # sending window 08:00-21:00
    ada = contact(session, owner)  # +1 415: America/Los_Angeles
    order = queue_one(session, owner, ada, SHIPPED, NIGHT)
    sale = queue_one(session, owner, ada, "Sale today", NIGHT)
    session.commit()
    assert (order.status, order.due_at, order.transactional) == ("queued", NIGHT, True)
    assert order.body == "Your order shipped\nReply STOP to opt out"  # R11 still applies
    assert (sale.status, sale.due_at) == ("queued", MORNING)
    assert _at_night(session_factory, sandbox).dispatch_due() == 1
    assert (_status(session, order.id), _status(session, sale.id)) == ("sent", "queued")
    assert_ledger_ok(session, owner.id)


def test_it_sends_a_transactional_message_that_waited_into_the_night(
    session: Session, session_factory: sessionmaker[Session], sandbox: SandboxProvider
) -> None:
    """The dispatcher's own R14 re-check lets it through: quiet hours are for marketing."""
    owner = account(session)
    ada = contact(session, owner)
    evening = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)  # 20:00 in San Francisco
    order = queue_one(session, owner, ada, SHIPPED, evening)
    session.commit()
    assert _at_night(session_factory, sandbox).dispatch_due() == 1
    assert _status(session, order.id) == "sent"


def test_it_refuses_a_transactional_message_to_an_opted_out_contact(
    session: Session, session_factory: sessionmaker[Session], sandbox: SandboxProvider
) -> None:
    owner = account(session)
    ada = contact(session, owner)
    queued = queue_one(session, owner, ada, SHIPPED, NIGHT)
    # R13: the opt-out arrives after it was queued; the dispatcher checks again.
    Consent(session, owner.id).record(ada.id, "opt_out", "keyword", source="sms reply")
    session.commit()
    assert _at_night(session_factory, sandbox).dispatch_due() == 1
    assert _status(session, queued.id) == "canceled"
    # R4: and a new one is held from the start.
    held = queue_one(session, owner, ada, SHIPPED, NIGHT)
    session.commit()
    assert (held.status, held.held_reason) == ("held", "opted_out")
    assert_ledger_ok(session, owner.id)


def test_it_skips_the_frequency_cap_and_is_not_counted_toward_it(session: Session) -> None:
    owner = account(session, frequency_cap=1)
    ada = contact(session, owner)
    first = queue_one(session, owner, ada, "Sale today", NIGHT)
    order = queue_one(session, owner, ada, SHIPPED, NIGHT)  # over the cap: goes anyway
    again = queue_one(session, owner, ada, SHIPPED, NIGHT)
    session.commit()
    assert [m.status for m in (first, order, again)] == ["queued"] * 3
    # A fresh day: the two order texts do not count, the one marketing message does.
    other = contact(session, owner, "+14155550123")
    for _ in range(2):
        queue_one(session, owner, other, SHIPPED, NIGHT)
    sale = queue_one(session, owner, other, "Sale today", NIGHT)
    capped = queue_one(session, owner, other, "Sale again", NIGHT)
    session.commit()
    assert (sale.status, capped.held_reason) == ("queued", "frequency_cap")
