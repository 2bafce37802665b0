"""The dispatcher against real databases and the sandbox carrier (no mocks): every
outcome of a provider call (R16, R17), the consent re-check (R13), graceful stop and
concurrent workers. The credit ledger balances after every scenario (R3, R18)."""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.dispatcher import BACKOFF_BASE, Dispatcher
from sendline.providers.base import Accepted, OutboundSms, Provider, ProviderRecord
from sendline.providers.sandbox import SandboxProvider
from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.consent import Consent
from sendline.store.credits import Credits
from sendline.store.engine_models import Message
from tests.engine.factories import (
    NOW,
    World,
    assert_ledger_ok,
    make_account,
    make_contact,
    make_world,
    message,
    queue_many,
    queue_message,
    reservation_state,
)
from tests.engine.sandbox_receipts import poll

LEASE = timedelta(seconds=60)


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(session_factory: sessionmaker[Session], clock: Clock) -> Iterator[SandboxProvider]:
    provider = SandboxProvider(session_factory, rng=random.Random(1), clock=clock)
    yield provider
    provider.close()


@pytest.fixture
def dispatcher(
    session_factory: sessionmaker[Session], sandbox: SandboxProvider, clock: Clock
) -> Dispatcher:
    return Dispatcher(
        session_factory, sandbox, worker_id="w1", lease=LEASE, clock=clock, rng=random.Random(2)
    )


@pytest.fixture
def world(session: Session) -> World:
    return make_world(session)


def _records(session: Session, message_id: int) -> list[SandboxMessage]:
    found = list(
        session.scalars(select(SandboxMessage).where(SandboxMessage.message_ref == message_id))
    )
    session.commit()
    return found


def test_it_handles_an_accepted_message(
    session: Session,
    world: World,
    dispatcher: Dispatcher,
    sandbox: SandboxProvider,
    session_factory: sessionmaker[Session],
    clock: Clock,
) -> None:
    msg = queue_message(session, world.account, world.contact)
    assert dispatcher.dispatch_due() == 1
    sent = message(session, msg.id)
    assert (sent.status, sent.provider, sent.attempts, sent.sent_at) == ("sent", "sandbox", 1, NOW)
    assert sent.provider_id is not None and sent.provider_id.startswith("SM")
    assert reservation_state(session, world.account.id, sent) == "charged"
    [record] = _records(session, msg.id)
    assert (record.provider_id, record.to, record.sender) == (
        sent.provider_id,
        sent.to_e164,
        "+14155550000",
    )
    assert dispatcher.dispatch_due() == 0  # nothing left, nothing sent twice

    assert poll(sandbox, session_factory, clock.advance(1)) == []  # the receipt is not due yet
    [report] = poll(sandbox, session_factory, clock.advance(2))
    assert (report.provider_id, report.status) == (sent.provider_id, "delivered")
    assert message(session, msg.id).status == "delivered"
    assert Credits(session, world.account.id).balance().purchased == 999
    assert_ledger_ok(session, world.account.id)


def test_it_handles_messages_not_yet_due(
    session: Session, world: World, dispatcher: Dispatcher, clock: Clock
) -> None:
    msg = queue_message(session, world.account, world.contact, due_at=NOW + timedelta(minutes=5))
    assert dispatcher.dispatch_due() == 0
    clock.advance(300)
    assert dispatcher.dispatch_due() == 1
    assert message(session, msg.id).status == "sent"


def test_it_handles_a_permanent_error(
    session: Session, world: World, dispatcher: Dispatcher
) -> None:
    msg = queue_message(session, world.account, world.contact, to="+15005550001")
    assert dispatcher.dispatch_due() == 1
    failed = message(session, msg.id)
    assert (failed.status, failed.error_code, failed.provider_id) == ("failed", "21211", None)
    assert reservation_state(session, world.account.id, failed) == "released"
    assert _records(session, msg.id) == []
    assert Credits(session, world.account.id).balance().purchased == 1000
    assert_ledger_ok(session, world.account.id)


@pytest.mark.parametrize("code", ["30003", "30005", "30007"])
def test_it_handles_a_delivery_failure(
    session: Session,
    world: World,
    dispatcher: Dispatcher,
    sandbox: SandboxProvider,
    session_factory: sessionmaker[Session],
    clock: Clock,
    code: str,
) -> None:
    to = {"30003": "+15005550030", "30005": "+15005550031", "30007": "+15005550032"}[code]
    msg = queue_message(session, world.account, world.contact, to=to)
    dispatcher.dispatch_due()
    assert message(session, msg.id).status == "sent"
    poll(sandbox, session_factory, clock.advance(5))
    done = message(session, msg.id)
    assert (done.status, done.error_code) == ("undelivered", code)
    assert reservation_state(session, world.account.id, done) == "charged"  # carriers bill these
    assert_ledger_ok(session, world.account.id)


def test_it_handles_a_transient_error_with_backoff_until_the_deadline(
    session: Session, world: World, dispatcher: Dispatcher, clock: Clock
) -> None:
    msg = queue_message(session, world.account, world.contact, to="+15005550029")
    for attempt in range(1, 6):
        assert dispatcher.dispatch_due() == 1
        retry = message(session, msg.id)
        assert (retry.status, retry.attempts, retry.error_code) == ("queued", attempt, "20429")
        assert retry.claimed_by is None and retry.due_at is not None
        ceiling = BACKOFF_BASE * 2 ** (attempt - 1)
        assert clock.now <= retry.due_at <= clock.now + timedelta(seconds=ceiling)
        assert reservation_state(session, world.account.id, retry) == "open"
        clock.now = retry.due_at
    clock.now = NOW + timedelta(hours=24) - timedelta(seconds=1)  # the retry would land past it
    assert dispatcher.dispatch_due() == 1
    failed = message(session, msg.id)
    assert (failed.status, failed.error_code) == ("failed", "20429")
    assert failed.detail is not None and "gave up after 6 attempts" in failed.detail
    assert reservation_state(session, world.account.id, failed) == "released"
    assert_ledger_ok(session, world.account.id)


def test_it_handles_retry_after_from_a_rate_limited_carrier(
    session: Session, world: World, session_factory: sessionmaker[Session], clock: Clock
) -> None:
    sandbox = SandboxProvider(session_factory, mps=1, clock=clock)
    dispatcher = Dispatcher(
        session_factory, sandbox, worker_id="w1", clock=clock, rng=random.Random(0)
    )
    first = queue_message(session, world.account, world.contact)
    second = queue_message(session, world.account, world.contact)
    assert dispatcher.dispatch_due() == 2
    assert message(session, first.id).status == "sent"
    retry = message(session, second.id)
    assert (retry.status, retry.error_code) == ("queued", "20429")
    assert retry.due_at is not None and retry.due_at >= NOW + timedelta(seconds=0.5)
    threading.Event().wait(1.0)  # the carrier's rate is real time
    clock.now = retry.due_at
    assert dispatcher.dispatch_due() == 1
    assert message(session, second.id).status == "sent"
    assert_ledger_ok(session, world.account.id)


def test_it_handles_an_unknown_outcome_the_provider_has(
    session: Session, world: World, dispatcher: Dispatcher, clock: Clock
) -> None:
    msg = queue_message(session, world.account, world.contact, to="+15005550090")
    dispatcher.dispatch_due()
    unknown = message(session, msg.id)
    assert (unknown.status, unknown.provider_id) == ("unknown", None)
    assert reservation_state(session, world.account.id, unknown) == "open"
    assert dispatcher.dispatch_due() == 0  # never blindly sent again (R17)
    assert dispatcher.reconcile(clock.now) == 0  # not before the lease is over
    assert dispatcher.reconcile(clock.advance(61)) == 1
    found = message(session, msg.id)
    [record] = _records(session, msg.id)
    assert (found.status, found.provider_id) == ("sent", record.provider_id)
    assert reservation_state(session, world.account.id, found) == "charged"
    assert_ledger_ok(session, world.account.id)


def test_it_handles_an_unknown_outcome_the_provider_never_got(
    session: Session, world: World, dispatcher: Dispatcher, clock: Clock
) -> None:
    msg = queue_message(session, world.account, world.contact, to="+15005550091")
    dispatcher.dispatch_due()
    assert message(session, msg.id).status == "unknown"
    assert dispatcher.reconcile(clock.advance(61)) == 1
    requeued = message(session, msg.id)
    assert (requeued.status, requeued.claimed_by) == ("queued", None)
    assert reservation_state(session, world.account.id, requeued) == "open"
    assert _records(session, msg.id) == []
    assert_ledger_ok(session, world.account.id)


def test_it_handles_a_lookup_that_cannot_tell(
    session: Session, world: World, dispatcher: Dispatcher, clock: Clock
) -> None:
    msg = queue_message(session, world.account, world.contact, to="+15005550092")
    dispatcher.dispatch_due()
    assert dispatcher.reconcile(clock.advance(61)) == 0
    still = message(session, msg.id)
    assert (still.status, still.claimed_at) == ("unknown", clock.now)  # next look: a lease later
    assert dispatcher.reconcile(clock.advance(30)) == 0
    assert len(_records(session, msg.id)) == 1
    assert_ledger_ok(session, world.account.id)


@pytest.mark.parametrize("reached_provider", [True, False])
def test_it_handles_a_worker_that_died_mid_call(
    session: Session,
    world: World,
    dispatcher: Dispatcher,
    sandbox: SandboxProvider,
    clock: Clock,
    reached_provider: bool,
) -> None:
    msg = queue_message(session, world.account, world.contact)
    session.execute(
        update(Message)
        .where(Message.id == msg.id)
        .values(status="sending", claimed_by="dead", claimed_at=NOW, attempts=1)
    )
    session.commit()
    if reached_provider:  # the dead worker's call landed; its commit never happened
        sandbox.send(OutboundSms(msg.id, "+14158675309", None, "hi", 1))
    assert dispatcher.reconcile(clock.advance(30)) == 0  # its lease still runs
    assert dispatcher.reconcile(clock.advance(31)) == 1
    assert message(session, msg.id).status == ("sent" if reached_provider else "queued")
    dispatcher.dispatch_due()
    assert message(session, msg.id).status == "sent"
    assert len(_records(session, msg.id)) == 1  # exactly once either way (R17)
    assert_ledger_ok(session, world.account.id)


def test_it_handles_an_opt_out_between_queueing_and_dispatch(
    session: Session, world: World, dispatcher: Dispatcher
) -> None:
    msg = queue_message(session, world.account, world.contact)
    reply = queue_message(
        session, world.account, world.contact, kind="reply", body="You are unsubscribed."
    )
    Consent(session, world.account.id).record(
        world.contact.id, "opt_out", "keyword", source="sms reply"
    )
    session.commit()
    assert dispatcher.dispatch_due() == 2
    canceled = message(session, msg.id)
    assert canceled.status == "canceled" and "R13" in (canceled.detail or "")
    assert reservation_state(session, world.account.id, canceled) == "released"
    assert _records(session, msg.id) == []
    assert message(session, reply.id).status == "sent"  # the confirmation still goes out
    assert_ledger_ok(session, world.account.id)


def test_it_handles_a_message_that_waited_into_quiet_hours(
    session: Session, session_factory: sessionmaker[Session], sandbox: SandboxProvider
) -> None:
    """R14 at the provider call: queued at 20:55 in San Francisco, dispatched at 21:05
    (a backlog, a retry), it waits for 08:00 instead of going out at night."""
    owner = make_account(session, "evening", quiet_start=8 * 60, quiet_end=21 * 60)
    ada = make_contact(session, owner)  # +1 415: America/Los_Angeles
    evening = datetime(2026, 11, 26, 5, 5, tzinfo=UTC)  # 21:05 PST on the 25th
    msg = queue_message(session, owner, ada, due_at=evening - timedelta(minutes=10))
    reply = queue_message(session, owner, ada, kind="reply", body="You are unsubscribed.")
    late = Dispatcher(session_factory, sandbox, worker_id="w1", clock=lambda: evening)
    assert late.dispatch_due() == 2
    waiting = message(session, msg.id)
    assert (waiting.status, waiting.attempts) == ("queued", 0)
    assert waiting.due_at == datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # 08:00 PST
    assert "quiet hours" in (waiting.detail or "")
    assert reservation_state(session, owner.id, waiting) == "open"  # still paid for
    assert _records(session, msg.id) == []
    assert message(session, reply.id).status == "sent"  # transactional: not held back
    morning = Dispatcher(
        session_factory, sandbox, worker_id="w1", clock=lambda: waiting.due_at or evening
    )
    assert morning.dispatch_due() == 1
    assert message(session, msg.id).status == "sent"
    assert_ledger_ok(session, owner.id)


def test_it_handles_marketing_to_a_contact_who_never_opted_in(
    session: Session, world: World, dispatcher: Dispatcher
) -> None:
    stranger = make_contact(session, world.account, "+14155550123", consent=False)
    msg = queue_message(session, world.account, stranger)
    orphan = queue_message(session, world.account, None, to="+14155550124")
    dispatcher.dispatch_due()
    assert message(session, msg.id).status == "canceled"
    assert message(session, orphan.id).status == "canceled"
    assert_ledger_ok(session, world.account.id)


class _After(Provider):
    """The sandbox called one message at a time (no windows), doing `then()` after
    `count` sends: a signal, a jump of the clock."""

    name = "sandbox"

    def __init__(self, inner: SandboxProvider, count: int, then: Callable[[], object]) -> None:
        self.inner, self.count, self.then = inner, count, then

    def send(self, sms: OutboundSms) -> Accepted:
        accepted = self.inner.send(sms)
        self.count -= 1
        if self.count == 0:
            self.then()
        return accepted

    def lookup(self, sms: OutboundSms) -> ProviderRecord | None:
        return self.inner.lookup(sms)


def test_it_handles_a_graceful_stop(
    session: Session,
    world: World,
    session_factory: sessionmaker[Session],
    sandbox: SandboxProvider,
    clock: Clock,
    sigterm_handler: list[Dispatcher],
) -> None:
    ids = [queue_message(session, world.account, world.contact).id for _ in range(10)]
    sigterm = _After(sandbox, 3, lambda: os.kill(os.getpid(), signal.SIGTERM))
    dispatcher = Dispatcher(session_factory, sigterm, worker_id="w1", clock=clock)
    sigterm_handler.append(dispatcher)
    assert dispatcher.dispatch_due() == 10
    statuses = [message(session, i).status for i in ids]
    assert statuses == ["sent"] * 3 + ["queued"] * 7  # the call in flight finished
    back = message(session, ids[-1])
    assert (back.claimed_by, back.claimed_at, back.attempts) == (None, None, 0)
    assert dispatcher.dispatch_due() == 0  # stopped: claims nothing more
    assert dispatcher.release_claims() == 0
    assert_ledger_ok(session, world.account.id)


def test_it_handles_a_claim_that_grows_old(
    session: Session,
    world: World,
    session_factory: sessionmaker[Session],
    sandbox: SandboxProvider,
    clock: Clock,
) -> None:
    """Past half its lease a worker stops calling: a reconciler may be about to act."""
    slow = _After(sandbox, 2, lambda: clock.advance(31))
    dispatcher = Dispatcher(session_factory, slow, worker_id="w1", lease=LEASE, clock=clock)
    ids = [queue_message(session, world.account, world.contact).id for _ in range(4)]
    dispatcher.dispatch_due()
    statuses = [message(session, i).status for i in ids]
    assert statuses == ["sent", "sent", "queued", "queued"]
    assert_ledger_ok(session, world.account.id)


def test_it_handles_a_heartbeat_that_no_longer_reaches_the_database(
    session: Session, world: World, dispatcher: Dispatcher
) -> None:
    """Others may soon take this worker for dead and reconcile its claims: it stops
    calling the provider and puts its batch back."""
    ids = [queue_message(session, world.account, world.contact).id for _ in range(3)]
    dispatcher.alive = lambda: False
    assert dispatcher.dispatch_due() == 3
    assert [message(session, i).status for i in ids] == ["queued"] * 3
    assert _records(session, ids[0]) == []
    assert_ledger_ok(session, world.account.id)


def test_it_handles_a_window_the_provider_fails_to_answer(
    session: Session, world: World, session_factory: sessionmaker[Session], clock: Clock
) -> None:
    """A window whose exchange blew up may have landed: all of it is unknown, then
    reconciled message by message."""
    sandbox = SandboxProvider(session_factory, clock=clock)
    dispatcher = Dispatcher(session_factory, sandbox, worker_id="w1", lease=LEASE, clock=clock)
    ids = [queue_message(session, world.account, world.contact).id for _ in range(3)]
    sandbox.send(OutboundSms(ids[0], "+14158675309", None, "hi", 1))  # the part that landed

    def broken(_messages: object) -> list[object]:
        raise ConnectionResetError("connection reset by peer")

    sandbox.send_window = broken  # type: ignore[method-assign,assignment]
    dispatcher.dispatch_due()
    assert [message(session, i).status for i in ids] == ["unknown"] * 3
    del sandbox.send_window
    assert dispatcher.reconcile(clock.advance(61)) == 3
    assert [message(session, i).status for i in ids] == ["sent", "queued", "queued"]
    assert_ledger_ok(session, world.account.id)


def test_it_handles_the_window_size_the_provider_declares(
    session: Session, world: World, session_factory: sessionmaker[Session], clock: Clock
) -> None:
    sandbox = SandboxProvider(session_factory, clock=clock)
    sandbox.window_size = 2
    sizes: list[int] = []
    send_window = sandbox.send_window

    def counted(messages: list[OutboundSms]) -> list[Any]:
        sizes.append(len(messages))
        return send_window(messages)

    sandbox.send_window = counted  # type: ignore[method-assign,assignment]
    dispatcher = Dispatcher(session_factory, sandbox, worker_id="w1", lease=LEASE, clock=clock)
    ids = [queue_message(session, world.account, world.contact).id for _ in range(5)]
    assert dispatcher.dispatch_due() == 5
    assert sizes == [2, 2, 1]
    assert [message(session, i).status for i in ids] == ["sent"] * 5


def test_it_handles_a_batch_larger_than_one_commit(
    session: Session, world: World, dispatcher: Dispatcher
) -> None:
    ids = queue_many(session, world.account, [world.contact], 450, due_at=NOW)
    assert [dispatcher.dispatch_due() for _ in range(4)] == [200, 200, 50, 0]
    sent = session.scalar(select(func.count()).where(Message.status == "sent", Message.id.in_(ids)))
    session.commit()
    assert sent == 450
    assert Credits(session, world.account.id).balance().purchased == 1000 - 450
    assert_ledger_ok(session, world.account.id)


def test_it_handles_two_dispatchers_claiming_concurrently(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    # SQLite is meant for one worker, but two still never share a row: BEGIN IMMEDIATE
    # serializes the claims.
    account = make_account(session, credits=3000)
    contacts = [make_contact(session, account, f"+1415555{n:04d}") for n in range(200, 220)]
    queue_many(session, account, contacts, 2000, due_at=NOW)
    sandbox = SandboxProvider(session_factory)
    claimed: dict[str, int] = {}
    start = threading.Barrier(2)
    # Each worker's first window waits for the other's, so both have claimed a batch
    # (committed, lock released) before either sends. Without it, SQLite's busy
    # handler can leave one thread asleep until the other has drained the queue, and
    # the test would prove nothing about two claimers.
    met = threading.Barrier(2, timeout=30)
    waited: set[str] = set()
    send_window = sandbox.send_window

    def meet_then_send(messages: list[OutboundSms]) -> list[Any]:
        if threading.current_thread().name not in waited:
            waited.add(threading.current_thread().name)
            met.wait()
        return send_window(messages)

    sandbox.send_window = meet_then_send  # type: ignore[method-assign]

    def work(worker_id: str) -> None:
        dispatcher = Dispatcher(session_factory, sandbox, worker_id=worker_id, batch_size=50)
        start.wait()
        total = 0
        while count := dispatcher.dispatch_due():
            total += count
        claimed[worker_id] = total

    threads = [threading.Thread(target=work, args=(f"w{n}",), name=f"w{n}") for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(claimed.values()) == 2000 and min(claimed.values()) > 0
    rows: Any = session.execute(
        select(SandboxMessage.message_ref, func.count()).group_by(SandboxMessage.message_ref)
    ).all()
    session.commit()
    assert len(rows) == 2000 and {count for _, count in rows} == {1}
    assert session.scalar(select(func.count()).where(Message.status != "sent")) == 0
    session.commit()
    assert_ledger_ok(session, account.id)
