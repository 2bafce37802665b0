"""The worker on both databases: the messages its runs queue due now go to its own
dispatcher already claimed, never through the queue, and a stop or a crash between the
two loses none of them and sends none twice (R17)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine import triggers
from sendline.engine.dispatcher import Dispatcher
from sendline.engine.worker import Worker, WorkerOptions
from sendline.providers.sandbox import SandboxProvider
from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.engine_models import Message, WorkerHeartbeat
from sendline.store.models import Account
from sendline.store.types import utcnow
from tests.engine.automation_factories import automation, messages
from tests.engine.factories import assert_ledger_ok, make_account, make_contact

LEASE = timedelta(seconds=60)


def _blast(session: Session, count: int = 3) -> Account:
    owner = make_account(session)
    for i in range(count):
        make_contact(session, owner, f"+1415555{i:04d}")
    found = automation(
        session, owner, "name: Blast\ntrigger: {type: bulk}\nsteps: [{type: send_sms, body: Hi}]"
    )
    triggers.start_bulk(session, owner.id, found.id, now=utcnow())
    session.commit()
    return owner


def _worker(session_factory: sessionmaker[Session], worker_id: str = "w1") -> Worker:
    sandbox = SandboxProvider(session_factory)
    return Worker(session_factory, sandbox, WorkerOptions(worker_id=worker_id))


def _carrier_count(session: Session) -> int:
    count = session.scalar(select(func.count()).select_from(SandboxMessage))
    session.commit()
    return int(count or 0)


def _assert_each_sent_once(session: Session, owner: Account, count: int = 3) -> None:
    """Every message sent, the carrier holding each once (none twice), the ledger whole."""
    assert {m.status for m in messages(session, owner)} == {"sent"}
    assert _carrier_count(session) == count
    assert_ledger_ok(session, owner.id)


def test_it_handles_a_blast_from_runs_to_the_carrier_in_one_pass(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = _blast(session)
    worker = _worker(session_factory)
    assert worker.step() >= 3
    sent = messages(session, owner)
    assert [(m.status, m.attempts, m.claimed_by) for m in sent] == [("sent", 1, "w1")] * 3
    assert _carrier_count(session) == 3
    assert_ledger_ok(session, owner.id)


def test_it_handles_another_worker_polling_meanwhile(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = _blast(session)
    worker = _worker(session_factory)
    assert worker.runner.run_due() == 3
    # Written already claimed: another worker's dispatcher finds nothing to take.
    other = Dispatcher(session_factory, SandboxProvider(session_factory), worker_id="w2")
    assert other.dispatch_due() == 0
    assert {(m.status, m.claimed_by) for m in messages(session, owner)} == {("sending", "w1")}
    assert worker.step() >= 3  # and its own worker sends them
    _assert_each_sent_once(session, owner)


def test_it_handles_a_stop_between_the_runs_and_the_sends(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = _blast(session)
    worker = _worker(session_factory)
    assert worker.runner.run_due() == 3
    worker.stop()  # SIGTERM before the dispatcher got them
    worker.run()
    back = messages(session, owner)
    assert [(m.status, m.attempts, m.claimed_by) for m in back] == [("queued", 0, None)] * 3
    assert _carrier_count(session) == 0
    assert _worker(session_factory, "w2").step() >= 3  # the next worker sends them
    _assert_each_sent_once(session, owner)


def test_it_handles_a_crash_between_the_runs_and_the_sends(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = _blast(session)
    assert _worker(session_factory).runner.run_due() == 3  # ... and the process dies
    later = utcnow() + LEASE + timedelta(seconds=1)
    survivor = Dispatcher(
        session_factory, SandboxProvider(session_factory), worker_id="w2", clock=lambda: later
    )
    assert survivor.reconcile() == 3  # the carrier never had them: back to the queue
    assert survivor.dispatch_due() == 3
    _assert_each_sent_once(session, owner)


def test_it_handles_a_crash_within_the_heartbeat_window_not_the_lease(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    """A killed worker's claims are free once its heartbeat expires (5 s by default),
    not a lease (60 s) later: looked up, then back to the queue, then sent once."""
    owner = _blast(session)
    dying = _worker(session_factory)
    dying.heartbeat.beat()  # alive ...
    assert dying.runner.run_due() == 3  # ... claims its runs' messages, and is killed
    beat = utcnow()

    def survivor_at(seconds: float) -> Dispatcher:
        at = beat + timedelta(seconds=seconds)
        sandbox = SandboxProvider(session_factory)
        return Dispatcher(session_factory, sandbox, worker_id="w2", lease=LEASE, clock=lambda: at)

    assert survivor_at(4).reconcile() == 0  # its heartbeat has not expired: maybe alive
    survivor = survivor_at(dying.heartbeat.window.total_seconds() + 1)
    assert survivor.reconcile() == 3  # well within the lease: the carrier never had them
    assert survivor.dispatch_due() == 3
    _assert_each_sent_once(session, owner)


def test_it_handles_a_backlog_of_a_dead_workers_claims_pass_after_pass(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    """A blast's dead worker leaves hundreds of claims; a full reconciliation batch is
    followed by another at the next pass, not `reconcile_every` later."""
    owner = _blast(session, count=5)
    dying = _worker(session_factory)
    assert dying.runner.run_due() == 5
    dying.heartbeat.beat()
    session.execute(update(WorkerHeartbeat).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    options = WorkerOptions(worker_id="w2", batch_size=2, reconcile_every=3600.0)
    survivor = Worker(session_factory, SandboxProvider(session_factory), options)

    def held() -> int:
        return sum(m.claimed_by == "w1" for m in messages(session, owner))

    survivor.step()
    assert held() == 3
    survivor.step()
    assert held() == 1
    survivor.step()
    survivor.step()
    _assert_each_sent_once(session, owner, count=5)


def test_it_handles_a_clean_stop_that_frees_its_claims_at_once(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = _blast(session)
    worker = _worker(session_factory)
    assert worker.runner.run_due() == 3
    worker.stop()
    worker.run()  # released what it claimed, and expired its heartbeat
    assert {(m.status, m.claimed_by) for m in messages(session, owner)} == {("queued", None)}
    [row] = session.scalars(select(WorkerHeartbeat)).all()
    assert (row.id, row.expires_at <= utcnow()) == ("w1", True)
    # A claim it could not release (an answer it never recorded) is reconciled at once.
    first = messages(session, owner)[0]
    session.execute(
        update(Message)
        .where(Message.id == first.id)
        .values(status="unknown", claimed_by="w1", claimed_at=utcnow())
    )
    session.commit()
    sandbox = SandboxProvider(session_factory)
    survivor = Dispatcher(session_factory, sandbox, worker_id="w2", lease=LEASE)
    assert survivor.reconcile() == 1
    assert survivor.dispatch_due() == 3
    _assert_each_sent_once(session, owner)


def test_it_handles_the_garbage_collector_of_a_worker_process() -> None:
    # In a process of its own: the tuning is process-wide, and this one runs the suite.
    probe = (
        "import gc\n"
        "from sendline.engine.worker import GC_FIRST_THRESHOLD, tune_garbage_collector\n"
        "before = gc.get_threshold()\n"
        "tune_garbage_collector()\n"
        "after = gc.get_threshold()\n"
        "assert after == (GC_FIRST_THRESHOLD, *before[1:]), (before, after)\n"
        "assert after[0] > before[0]\n"
        "assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()  # the imports\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
