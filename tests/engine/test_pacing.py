"""Pacing (SENDLINE_SENDER_MPS / SENDLINE_ACCOUNT_MPS) against real databases: a slow
sender's backlog goes back to the queue instead of holding the worker, so other
accounts' messages are not stuck behind it, and the rate still holds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.dispatcher import PACED, Dispatcher
from sendline.providers.sandbox import SandboxProvider
from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.engine_models import Message
from sendline.store.ratelimit import try_acquire, try_acquire_all
from tests.engine.factories import (
    NOW,
    assert_ledger_ok,
    make_account,
    make_contact,
    message,
    queue_message,
)


def _dispatcher(factory: sessionmaker[Session], **rates: float) -> Dispatcher:
    return Dispatcher(factory, SandboxProvider(factory), worker_id="w1", **rates)  # type: ignore[arg-type]


def test_it_handles_a_slow_sender_without_holding_up_another_account(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    blasting = make_account(session, "blast", sender_number="+14155550100")
    contact = make_contact(session, blasting)
    backlog = [queue_message(session, blasting, contact).id for _ in range(30)]
    other = make_account(session, "other", sender_number="+14155550200")
    welcome = queue_message(session, other, make_contact(session, other, "+14155550123"))
    # Due after the whole blast: by due order, the last message of the batch.
    session.execute(
        Message.__table__.update()
        .where(Message.id == welcome.id)
        .values(due_at=NOW + timedelta(minutes=1))
    )
    session.commit()
    before = datetime.now(UTC)
    dispatcher = _dispatcher(session_factory, sender_mps=1.0)
    assert dispatcher.dispatch_due() == 31
    assert message(session, welcome.id).status == "sent"  # not 29 seconds later
    blast = [message(session, i) for i in backlog]
    assert blast[0].status == "sent"
    waiting = blast[1:]
    assert {(m.status, m.attempts, m.detail) for m in waiting} == {("queued", 0, PACED)}
    # Back in the queue one slot apart at the sender's rate, not all due at once.
    due = sorted(m.due_at for m in waiting if m.due_at is not None)
    assert len(due) == 29 and due[0] > before
    gaps = [(b - a).total_seconds() for a, b in zip(due, due[1:], strict=False)]
    assert min(gaps) >= 0.99
    # The next batch's put-backs line up after this one's, not on top of them.
    more = [queue_message(session, blasting, contact).id for _ in range(5)]
    assert dispatcher.dispatch_due() == 5
    then = sorted(message(session, i).due_at or before for i in more)
    assert then[0] >= due[-1] + timedelta(seconds=0.99)
    assert_ledger_ok(session, blasting.id)


def test_it_handles_a_put_back_message_when_its_slot_comes(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = make_account(session)
    contact = make_contact(session, owner)
    ids = [queue_message(session, owner, contact).id for _ in range(2)]
    dispatcher = _dispatcher(session_factory, sender_mps=2.0)
    dispatcher.dispatch_due()
    assert [message(session, i).status for i in ids] == ["sent", "queued"]
    second = message(session, ids[1])
    assert second.due_at is not None
    assert dispatcher.dispatch_due() == 0  # not due yet: nothing claimed, nothing waits
    # Half a second at 2 per second; the sandbox's clock is the database's.
    time.sleep(max(0.0, (second.due_at - datetime.now(UTC)).total_seconds()) + 0.01)
    assert dispatcher.dispatch_due() == 1
    sent = message(session, ids[1])
    assert (sent.status, sent.attempts, sent.detail) == ("sent", 1, None)
    carrier = session.scalars(select(SandboxMessage.message_ref)).all()
    session.commit()
    assert sorted(carrier) == sorted(ids)  # each once
    assert_ledger_ok(session, owner.id)


def test_it_handles_two_limits_all_or_nothing(session_factory: sessionmaker[Session]) -> None:
    assert try_acquire(session_factory, "account:1", 1, 1.0) == 0.0
    # The account refuses: the sender's slot must stay free for another message.
    wait = try_acquire_all(session_factory, [("sender:+1", 1.0), ("account:1", 1.0)], 1)
    assert 0.5 < wait <= 1.0
    assert try_acquire(session_factory, "sender:+1", 1, 1.0) == 0.0
