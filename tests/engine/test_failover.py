"""Failover across an account's providers, on both databases, with the in-process
scripted provider: a message goes to the next provider only when the one before it
refused it transiently (never accepted), so no message is ever handed to two (R17); an
unknown outcome stays with its provider until reconciled, and ends `unconfirmed` after
the deadline (R17); a carrier's opt-out refusal is an opt-out (R13)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.circuit import CircuitBreaker
from sendline.engine.dispatcher import ALL_OPEN, Dispatcher
from sendline.store.consent import Consent
from sendline.store.engine_models import Message
from tests.engine.clocks import FakeClock
from tests.engine.factories import (
    NOW,
    World,
    assert_ledger_ok,
    make_world,
    message,
    queue_message,
    reservation_state,
)
from tests.engine.scripted_provider import Chain, ScriptedProvider, handed_to_both

LEASE = timedelta(seconds=60)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def world(session: Session) -> World:
    return make_world(session)


def _dispatcher(
    factory: sessionmaker[Session],
    clock: FakeClock,
    *providers: ScriptedProvider,
    **options: object,
) -> Dispatcher:
    breaker = CircuitBreaker(failures=3, window=60.0, cooldown=30.0, clock=clock.seconds)
    return Dispatcher(
        factory,
        Chain(*providers),
        worker_id="w1",
        lease=LEASE,
        clock=clock,
        rng=random.Random(3),
        breaker=breaker,
        **options,  # type: ignore[arg-type]
    )


def test_it_fails_over_while_the_first_provider_fails_transiently(
    session: Session, world: World, session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    first = ScriptedProvider("twilio:1", then="transient")
    second = ScriptedProvider("http:2")
    ids = [queue_message(session, world.account, world.contact).id for _ in range(10)]
    assert _dispatcher(session_factory, clock, first, second).dispatch_due() == 10
    # Three refusals open the first one's circuit; each refused message went on to the
    # second at once, and the seven after them straight to it.
    assert (first.calls, second.calls) == (3, 10)
    assert first.accepted == {} and sorted(second.accepted) == ids
    assert handed_to_both(first, second) == set()
    for message_id in ids:
        sent = message(session, message_id)
        assert (sent.status, sent.provider, sent.provider_id, sent.attempts) == (
            "sent",
            "http:2",
            f"http:2-{message_id}",
            1,
        )
    assert_ledger_ok(session, world.account.id)


def test_it_fails_over_with_calls_in_flight_and_hands_none_to_both(
    session: Session, world: World, session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    first = ScriptedProvider("twilio:1", then="transient", latency=0.01)
    second = ScriptedProvider("http:2", latency=0.01)
    ids = [queue_message(session, world.account, world.contact).id for _ in range(40)]
    dispatcher = _dispatcher(session_factory, clock, first, second, concurrency=8)
    assert dispatcher.dispatch_due() == 40
    dispatcher.close()
    # The circuit opens after three failures, but calls already routed to the first
    # (at most a pool's worth) still try it, and fail over one by one.
    assert 3 <= first.calls <= 3 + 8 and second.calls == 40
    assert sorted(second.accepted) == ids and handed_to_both(first, second) == set()
    assert {message(session, i).status for i in ids} == {"sent"}
    assert_ledger_ok(session, world.account.id)


def test_it_keeps_messages_waiting_while_every_provider_is_open_then_probes(
    session: Session, world: World, session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    first = ScriptedProvider("twilio:1", then="transient")
    second = ScriptedProvider("http:2", then="transient")
    ids = [queue_message(session, world.account, world.contact).id for _ in range(6)]
    dispatcher = _dispatcher(session_factory, clock, first, second)
    assert dispatcher.dispatch_due() == 6
    assert (first.calls, second.calls) == (3, 3)  # both open after three refusals each
    assert (dispatcher.breaker.state("twilio:1"), dispatcher.breaker.state("http:2")) == (
        "open",
        "open",
    )
    for message_id in ids[3:]:
        waiting = message(session, message_id)
        assert (waiting.status, waiting.error_code, waiting.provider) == (
            "queued",
            "circuit_open",
            None,
        )
        assert ALL_OPEN in (waiting.detail or "")
        assert waiting.due_at is not None and waiting.due_at >= NOW + timedelta(seconds=30)
        assert reservation_state(session, world.account.id, waiting) == "open"  # never dropped
    assert {message(session, i).status for i in ids[:3]} == {"queued"}

    first.then = "ok"  # the first provider is back
    clock.advance(60)
    assert dispatcher.dispatch_due() == 6
    # One probe to the first closes its circuit; everything goes there after it.
    assert (first.calls, second.calls) == (3 + 6, 3)
    assert sorted(first.accepted) == ids and handed_to_both(first, second) == set()
    assert {message(session, i).provider for i in ids} == {"twilio:1"}
    assert dispatcher.breaker.state("twilio:1") == "closed"
    assert_ledger_ok(session, world.account.id)


def test_it_leaves_an_unknown_outcome_with_its_provider(
    session: Session, world: World, session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    first = ScriptedProvider("twilio:1", ["lost"])
    second = ScriptedProvider("http:2")
    msg = queue_message(session, world.account, world.contact)
    dispatcher = _dispatcher(session_factory, clock, first, second)
    dispatcher.dispatch_due()
    unknown = message(session, msg.id)
    assert (unknown.status, unknown.provider) == ("unknown", "twilio:1")
    assert dispatcher.reconcile(clock.advance(61)) == 1
    found = message(session, msg.id)
    assert (found.status, found.provider, found.provider_id) == (
        "sent",
        "twilio:1",
        f"twilio:1-{msg.id}",
    )
    assert (first.calls, first.lookups, second.calls, second.lookups) == (1, 1, 0, 0)
    assert reservation_state(session, world.account.id, found) == "charged"
    assert_ledger_ok(session, world.account.id)


def test_it_reconciles_a_dead_workers_message_at_every_provider_of_the_chain(
    session: Session, world: World, session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    """A worker that died between the call and its commit recorded no provider: the
    chain is asked, and the one that has it settles it."""
    first = ScriptedProvider("twilio:1")
    second = ScriptedProvider("http:2")
    msg = queue_message(session, world.account, world.contact)
    second.accepted[msg.id] = "http:2-landed"  # the dead worker's call landed there
    session.execute(
        update(Message)
        .where(Message.id == msg.id)
        .values(status="sending", claimed_by="dead", claimed_at=NOW, attempts=1)
    )
    session.commit()
    dispatcher = _dispatcher(session_factory, clock, first, second)
    assert dispatcher.reconcile(clock.advance(61)) == 1
    found = message(session, msg.id)
    assert (found.status, found.provider, found.provider_id) == ("sent", "http:2", "http:2-landed")
    assert (first.lookups, second.lookups, first.calls, second.calls) == (1, 1, 0, 0)
    assert_ledger_ok(session, world.account.id)


def test_it_ends_an_unknown_outcome_unconfirmed_after_the_deadline(
    session: Session, world: World, session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    first = ScriptedProvider("twilio:1", ["timeout"], lookup_unsure=True)
    second = ScriptedProvider("http:2")
    msg = queue_message(session, world.account, world.contact)
    dispatcher = _dispatcher(
        session_factory, clock, first, second, unconfirmed_after=timedelta(hours=1)
    )
    dispatcher.dispatch_due()
    assert message(session, msg.id).status == "unknown"
    assert dispatcher.reconcile(clock.advance(61)) == 0  # unsure: stays unknown
    clock.advance(3600 - 61 - 1)
    assert dispatcher.reconcile() == 0  # a second short of the deadline
    assert message(session, msg.id).status == "unknown"
    clock.advance(61)  # past the deadline, and past the last look's lease
    assert dispatcher.reconcile() == 1
    failed = message(session, msg.id)
    assert (failed.status, failed.error_code, failed.provider) == (
        "failed",
        "unconfirmed",
        "twilio:1",
    )
    assert (failed.detail or "").startswith("unconfirmed")
    assert reservation_state(session, world.account.id, failed) == "released"
    clock.advance(3600)
    assert dispatcher.dispatch_due() == 0 and dispatcher.reconcile() == 0  # never resent
    assert (first.calls, second.calls, first.lookups) == (1, 0, 3)
    assert_ledger_ok(session, world.account.id)


def test_it_ends_unconfirmed_a_message_whose_provider_is_gone(
    session: Session, world: World, session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    only = ScriptedProvider("http:2")
    msg = queue_message(session, world.account, world.contact)
    session.execute(
        update(Message)
        .where(Message.id == msg.id)
        .values(
            status="unknown", provider="twilio:9", claimed_by="w0", claimed_at=NOW, updated_at=NOW
        )
    )
    session.commit()
    dispatcher = _dispatcher(session_factory, clock, only, unconfirmed_after=timedelta(hours=1))
    assert dispatcher.reconcile(clock.advance(61)) == 0
    assert dispatcher.reconcile(clock.advance(3600)) == 1
    assert message(session, msg.id).error_code == "unconfirmed"
    assert (only.lookups, only.calls) == (0, 0)  # another provider proves nothing
    assert_ledger_ok(session, world.account.id)


def test_it_records_a_carrier_opt_out_and_cancels_the_contacts_other_messages(
    session: Session, world: World, session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    carrier = ScriptedProvider("twilio:1", ["opted_out"])
    refused = queue_message(session, world.account, world.contact)
    later = queue_message(session, world.account, world.contact, due_at=NOW + timedelta(hours=1))
    _dispatcher(session_factory, clock, carrier).dispatch_due()
    failed = message(session, refused.id)
    assert (failed.status, failed.error_code, failed.provider) == ("failed", "21610", "twilio:1")
    assert reservation_state(session, world.account.id, failed) == "released"
    canceled = message(session, later.id)
    assert canceled.status == "canceled"
    assert reservation_state(session, world.account.id, canceled) == "released"
    consent = Consent(session, world.account.id)
    event = consent.latest(world.contact.id)
    assert event is not None
    assert (event.kind, event.method, consent.status(world.contact.id)) == (
        "opt_out",
        "keyword",
        "opted_out",
    )
    assert "21610" in event.source
    session.commit()
    clock.advance(3600)
    assert _dispatcher(session_factory, clock, carrier).dispatch_due() == 0
    assert carrier.calls == 1
    assert_ledger_ok(session, world.account.id)
