"""Calls in flight at once to a provider without windows (SENDLINE_PROVIDER_CONCURRENCY),
on both databases: never more than the setting, the sender's rate still held, and a
SIGTERM finishes the calls in flight and puts the rest back in the queue."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.dispatcher import PACED, Dispatcher
from sendline.engine.worker import Worker, WorkerOptions
from tests.engine.clocks import FakeClock
from tests.engine.factories import (
    NOW,
    World,
    assert_ledger_ok,
    make_world,
    message,
    queue_message,
)
from tests.engine.scripted_provider import Chain, ScriptedProvider


@pytest.fixture
def world(session: Session) -> World:
    return make_world(session)


def _queue(session: Session, world: World, count: int) -> list[int]:
    return [queue_message(session, world.account, world.contact).id for _ in range(count)]


def test_it_keeps_up_to_the_setting_of_calls_in_flight(
    session: Session, world: World, session_factory: sessionmaker[Session]
) -> None:
    ids = _queue(session, world, 30)
    carrier = ScriptedProvider("twilio:1", latency=0.05)
    dispatcher = Dispatcher(
        session_factory, carrier, worker_id="w1", clock=lambda: NOW, concurrency=5
    )
    started = time.monotonic()
    assert dispatcher.dispatch_due() == 30
    elapsed = time.monotonic() - started
    dispatcher.close()
    assert (carrier.calls, carrier.max_in_flight, carrier.in_flight) == (30, 5, 0)
    assert elapsed < 30 * 0.05 * 0.6  # one at a time would take 1.5 s
    assert sorted(carrier.accepted) == ids
    assert {message(session, i).status for i in ids} == {"sent"}
    assert_ledger_ok(session, world.account.id)


def test_it_holds_the_senders_rate_with_calls_in_flight(
    session: Session, world: World, session_factory: sessionmaker[Session]
) -> None:
    clock = FakeClock(NOW + timedelta(minutes=1))
    ids = _queue(session, world, 6)
    carrier = ScriptedProvider("twilio:1")
    dispatcher = Dispatcher(
        session_factory,
        carrier,
        worker_id="w1",
        clock=clock,
        pace_clock=clock,
        sender_mps=2.0,  # a slot every 0.5 s: more than a short wait, the rest go back
        concurrency=8,
    )
    assert dispatcher.dispatch_due() == 6
    dispatcher.close()
    assert carrier.calls == 1
    assert message(session, ids[0]).status == "sent"
    for message_id in ids[1:]:
        back = message(session, message_id)
        assert (back.status, back.detail, back.attempts) == ("queued", PACED, 0)
    assert_ledger_ok(session, world.account.id)


def test_it_finishes_the_calls_in_flight_on_sigterm_and_puts_the_rest_back(
    session: Session,
    world: World,
    session_factory: sessionmaker[Session],
    sigterm_handler: list[Dispatcher],
) -> None:
    ids = _queue(session, world, 12)
    gate = threading.Event()
    carrier = ScriptedProvider("twilio:1", gate=gate)
    dispatcher = Dispatcher(
        session_factory, carrier, worker_id="w1", clock=lambda: NOW, concurrency=4
    )
    sigterm_handler.append(dispatcher)

    def sigterm_mid_flight() -> None:
        while carrier.in_flight < 4:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGTERM)
        while not dispatcher.stopping:
            time.sleep(0.005)
        gate.set()  # the calls in flight answer after the signal

    signaller = threading.Thread(target=sigterm_mid_flight)
    signaller.start()
    assert dispatcher.dispatch_due() == 12
    signaller.join()
    dispatcher.close()
    statuses = [message(session, i).status for i in ids]
    assert statuses == ["sent"] * 4 + ["queued"] * 8
    assert (carrier.calls, carrier.max_in_flight) == (4, 4)
    back = message(session, ids[-1])
    assert (back.claimed_by, back.claimed_at, back.attempts) == (None, None, 0)
    assert dispatcher.dispatch_due() == 0  # stopped: claims nothing more
    assert_ledger_ok(session, world.account.id)


def test_it_gives_a_worker_its_directory_and_setting(
    session: Session, world: World, session_factory: sessionmaker[Session]
) -> None:
    ids = _queue(session, world, 9)
    first = ScriptedProvider("twilio:1", latency=0.05)
    second = ScriptedProvider("http:2")
    options = WorkerOptions(worker_id="w1", provider_concurrency=3, reconcile_every=3600.0)
    worker = Worker(session_factory, Chain(first, second), options)
    assert worker.step() >= 9
    worker.dispatcher.close()
    assert (first.calls, first.max_in_flight, second.calls) == (9, 3, 0)
    assert (first.polls, second.polls) == (1, 1)  # receipts polled from every provider
    assert {message(session, i).provider for i in ids} == {"twilio:1"}
    assert_ledger_ok(session, world.account.id)
