"""Pacing (SENDLINE_SENDER_MPS / SENDLINE_ACCOUNT_MPS) against real databases: a slow
sender's backlog goes back to the queue instead of holding the worker, so other
accounts' messages are not stuck behind it, and the rate still holds. On a fake clock:
due times and sleeps are asserted exactly, and nothing waits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.dispatcher import PACED, Dispatcher
from sendline.engine.pacing import SHORT_WAIT, SLEEP_BUDGET
from sendline.providers.sandbox import SandboxProvider
from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.ratelimit import try_acquire, try_acquire_all
from tests.engine.clocks import FakeClock
from tests.engine.factories import (
    NOW,
    assert_ledger_ok,
    make_account,
    make_contact,
    message,
    queue_message,
)

START = NOW + timedelta(minutes=2)  # everything the tests queue is due by then


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def _dispatcher(
    factory: sessionmaker[Session], clock: FakeClock, **rates: float | None
) -> Dispatcher:
    sandbox = SandboxProvider(factory, clock=clock)
    return Dispatcher(factory, sandbox, worker_id="w1", clock=clock, pace_clock=clock, **rates)  # type: ignore[arg-type]


def _seconds(at: list[timedelta]) -> list[float]:
    return [delta.total_seconds() for delta in at]


def test_it_handles_a_slow_sender_without_holding_up_another_account(
    session: Session, session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    blasting = make_account(session, "blast", sender_number="+14155550100")
    contact = make_contact(session, blasting)
    backlog = [queue_message(session, blasting, contact).id for _ in range(30)]
    other = make_account(session, "other", sender_number="+14155550200")
    # Due after the whole blast: by due order, the last message of the batch.
    welcome = queue_message(
        session,
        other,
        make_contact(session, other, "+14155550123"),
        due_at=NOW + timedelta(minutes=1),
    )
    dispatcher = _dispatcher(session_factory, clock, sender_mps=1.0)
    assert dispatcher.dispatch_due() == 31
    assert message(session, welcome.id).status == "sent"  # not 29 seconds later
    blast = [message(session, i) for i in backlog]
    assert sorted(m.status for m in blast) == ["queued"] * 29 + ["sent"]
    waiting = [m for m in blast if m.status == "queued"]
    assert {(m.attempts, m.detail) for m in waiting} == {(0, PACED)}
    # Back in the queue one slot apart at the sender's rate, from its next slot on.
    due = sorted(m.due_at - START for m in waiting if m.due_at is not None)
    assert _seconds(due) == [float(k) for k in range(1, 30)]
    assert clock.slept == 0.0  # a wait of a whole second is never slept
    # The next batch's put-backs line up after this one's, not on top of them.
    more = [queue_message(session, blasting, contact).id for _ in range(5)]
    assert dispatcher.dispatch_due() == 5
    then = sorted(message(session, i).due_at or START for i in more)
    assert _seconds([at - START for at in then]) == [float(k) for k in range(30, 35)]
    assert_ledger_ok(session, blasting.id)


def test_it_handles_a_put_back_message_when_its_slot_comes(
    session: Session, session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    owner = make_account(session)
    contact = make_contact(session, owner)
    ids = [queue_message(session, owner, contact).id for _ in range(2)]
    dispatcher = _dispatcher(session_factory, clock, sender_mps=2.0)
    dispatcher.dispatch_due()
    status = {i: message(session, i).status for i in ids}
    [first], [second] = ([i for i in ids if status[i] == s] for s in ("sent", "queued"))
    assert message(session, second).due_at == START + timedelta(seconds=0.5)  # 2 per second
    clock.advance(0.499)
    assert dispatcher.dispatch_due() == 0  # not due yet: nothing claimed, nothing waits
    clock.advance(0.001)
    assert dispatcher.dispatch_due() == 1
    sent = message(session, second)
    assert (sent.status, sent.attempts, sent.detail) == ("sent", 1, None)
    carrier = session.execute(select(SandboxMessage.message_ref, SandboxMessage.accepted_at)).all()
    session.commit()
    assert sorted(carrier) == sorted([(first, START), (second, START + timedelta(seconds=0.5))])
    assert clock.slept == 0.0
    assert_ledger_ok(session, owner.id)


def test_it_handles_short_waits_by_sleeping_within_the_budget(
    session: Session, session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    """At 4 per second each wait is SHORT_WAIT: slept, with the slot reserved, until the
    batch has slept SLEEP_BUDGET; the rest go back to the queue, one slot apart."""
    assert SHORT_WAIT == 0.25 and SLEEP_BUDGET == 1.0  # the figures below follow from them
    owner = make_account(session)
    contact = make_contact(session, owner)
    ids = [queue_message(session, owner, contact).id for _ in range(8)]
    dispatcher = _dispatcher(session_factory, clock, account_mps=4.0)
    assert dispatcher.dispatch_due() == 8
    assert clock.slept == SLEEP_BUDGET and clock() == START + timedelta(seconds=1)
    accepted = session.scalars(select(SandboxMessage.accepted_at).order_by(SandboxMessage.id)).all()
    session.commit()
    assert _seconds([at - START for at in accepted]) == [0.0, 0.25, 0.5, 0.75, 1.0]
    put_back = [m for m in (message(session, i) for i in ids) if m.status == "queued"]
    assert {m.detail for m in put_back} == {PACED}
    assert _seconds(sorted((m.due_at or START) - START for m in put_back)) == [1.25, 1.5, 1.75]
    assert_ledger_ok(session, owner.id)


def test_it_handles_a_stop_while_sleeping(
    session: Session, session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    """A worker stopped during a pacing sleep sends nothing more: the rest of the batch
    goes back to the queue as it was."""
    owner = make_account(session)
    contact = make_contact(session, owner)
    ids = [queue_message(session, owner, contact).id for _ in range(3)]
    dispatcher = _dispatcher(session_factory, clock, sender_mps=4.0)
    clock.on_sleep = dispatcher.request_stop
    assert dispatcher.dispatch_due() == 3
    statuses = sorted((m.status, m.attempts) for m in (message(session, i) for i in ids))
    assert statuses == [("queued", 0), ("queued", 0), ("sent", 1)]
    assert clock.slept == 0.25
    assert_ledger_ok(session, owner.id)


def test_it_handles_two_limits_all_or_nothing(
    session_factory: sessionmaker[Session], clock: FakeClock
) -> None:
    assert try_acquire(session_factory, "account:1", 1, 1.0, clock=clock.seconds) == 0.0
    # The account refuses: the sender's slot must stay free for another message.
    limits = [("sender:+1", 1.0), ("account:1", 1.0)]
    assert try_acquire_all(session_factory, limits, 1, clock=clock.seconds) == 1.0
    assert try_acquire(session_factory, "sender:+1", 1, 1.0, clock=clock.seconds) == 0.0
