"""Crash safety (R17, R18): a blast of 10,000 messages (1,000 contacts, ten send steps)
through two real worker processes on PostgreSQL (runs, the hand-off of their messages,
dispatch, receipts, reconciliation), `kill -9`ed at random moments and restarted.
Afterwards every run completed, every step made exactly one message, every message is
final, none reached the (sandbox) carrier twice, none was lost, and the ledger balances
to exactly the messages that reached the carrier. And what a killed worker held is
taken over within its heartbeat's window, not after the claim lease."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.triggers import start_bulk
from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.credits import Credits
from sendline.store.db import create_engine_for, session_factory
from sendline.store.engine_models import AutomationRun, Message, WorkerHeartbeat
from sendline.store.models import LedgerEntry
from sendline.store.types import utcnow
from tests.engine.automation_factories import automation, many_contacts
from tests.engine.factories import assert_ledger_ok, make_account

MESSAGES = 10_000
STEPS = 10  # send steps per run: 1,000 contacts
KILLS = 6
FINISH_WITHIN = 100.0  # seconds, after the last kill
LEASE = 30.0  # seconds: a claim's lease, far longer than the heartbeat's window
# Seconds between beats; dead after 5 missed: a 2.5 s window. Not shorter: a worker
# stops calling at half its window without a beat, and a loaded machine delays beats.
HEARTBEAT = 0.5
# A killed worker's claims must be taken over well within the lease (before the fix,
# only the lease freed them): the window, a reconciliation pass, a loaded machine.
TAKEOVER_WITHIN = LEASE / 3
WORKER_ARGS = [
    *("--lease", str(LEASE), "--heartbeat", str(HEARTBEAT), "--batch", "50"),
    *("--failure-rate", "0.05", "--unknown-rate", "0.01"),
]
ROOT = Path(__file__).resolve().parents[2]  # `-m tests.engine.crashworker` runs from here


def _start(url: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.engine.crashworker", url, *WORKER_ARGS],
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )


def _held(pid: int) -> Select[Any]:
    """How many messages the process holds `sending` (its worker id is host:pid:suffix)."""
    return select(func.count()).where(
        Message.status == "sending", Message.claimed_by.like(f"%:{pid}:%")
    )


def _kill_holding(factory: sessionmaker[Session], victim: subprocess.Popen[bytes]) -> int:
    """`kill -9` the worker, at a moment it holds claims if one comes within a few
    seconds (those are what recovery is about); returns how many it left behind."""
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        with factory() as session:
            if session.scalar(_held(victim.pid)):
                break
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    with factory() as session:
        return session.scalar(_held(victim.pid)) or 0


def _wait_alive(factory: sessionmaker[Session], worker: subprocess.Popen[bytes]) -> None:
    """Until the worker beats (a restarted one takes seconds to import on a busy
    machine): recovery is timed from a kill to a running survivor's takeover."""
    beating = select(func.count()).where(
        WorkerHeartbeat.id.like(f"%:{worker.pid}:%"), WorkerHeartbeat.expires_at > utcnow()
    )
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and worker.poll() is None:
        with factory() as session:
            if session.scalar(beating):
                return
        time.sleep(0.05)


def _takeover_time(factory: sessionmaker[Session], pid: int, held: int) -> float:
    """Seconds until a survivor starts taking over the `held` messages the killed process
    left `sending`. Returns once it has taken them all (it looks them up a batch a
    pass): the next kill is timed on its own, not behind this one's backlog."""
    started = time.monotonic()
    first = None
    while time.monotonic() - started < LEASE * 2:
        with factory() as session:
            left = session.scalar(_held(pid)) or 0
        if left < held and first is None:
            first = time.monotonic() - started
        if not left:
            break
        time.sleep(0.05)
    return first if first is not None else time.monotonic() - started


def _run_with_kills(url: str, log: Path, rng: random.Random) -> None:
    workers = [_start(url, log), _start(url, log)]
    engine = create_engine_for(url)
    factory = session_factory(engine)
    takeovers: list[float] = []
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.5, 2.0))
            index = rng.randrange(len(workers))
            _wait_alive(factory, workers[1 - index])
            held = _kill_holding(factory, workers[index])
            if held:  # the other worker alone: it takes over what the dead one held
                takeovers.append(_takeover_time(factory, workers[index].pid, held))
            workers[index] = _start(url, log)
        deadline = time.monotonic() + FINISH_WITHIN
        for worker in workers:
            worker.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"workers did not finish in time; their log:\n{log.read_text()[-3000:]}")
    finally:
        engine.dispose()
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    codes = [worker.returncode for worker in workers]
    assert codes == [0, 0], log.read_text()[-3000:]
    assert takeovers, "no kill left a claim behind: recovery went untested"
    assert max(takeovers) < TAKEOVER_WITHIN, takeovers


@pytest.mark.slow
def test_it_handles_workers_killed_at_random(
    session: Session, database_url: str, backend: str, tmp_path: Path
) -> None:
    if backend != "postgresql":
        pytest.skip("several worker processes need PostgreSQL (SQLite runs one worker)")
    account = make_account(session, credits=MESSAGES, frequency_cap=STEPS)
    many_contacts(session, account, MESSAGES // STEPS)
    steps = ", ".join(f"{{type: send_sms, body: 'Part {n}'}}" for n in range(1, STEPS + 1))
    blast = automation(session, account, f"name: Blast\ntrigger: {{type: bulk}}\nsteps: [{steps}]")
    assert start_bulk(session, account.id, blast.id, now=utcnow()) == MESSAGES // STEPS
    session.commit()

    _run_with_kills(database_url, tmp_path / "workers.log", random.Random())

    runs = session.execute(select(AutomationRun.status, AutomationRun.steps_done)).all()
    assert set(runs) == {("completed", STEPS)} and len(runs) == MESSAGES // STEPS
    made = session.execute(select(Message.contact_id, Message.body)).all()
    assert len(set(made)) == len(made) == MESSAGES  # each step of each run exactly once
    ids = [row[0] for row in session.execute(select(Message.id))]

    statuses = dict(
        (status, count)
        for status, count in session.execute(
            select(Message.status, func.count()).group_by(Message.status)
        ).all()
    )
    assert sum(statuses.values()) == MESSAGES  # none lost
    assert set(statuses) <= {"delivered", "undelivered", "failed", "canceled", "held"}, statuses
    assert statuses.get("delivered", 0) > MESSAGES * 0.9

    # At most once at the carrier, and exactly once for every message it accepted.
    per_message = dict(
        (ref, count)
        for ref, count in session.execute(
            select(SandboxMessage.message_ref, func.count()).group_by(SandboxMessage.message_ref)
        ).all()
    )
    assert max(per_message.values()) == 1, "a message reached the carrier twice (R17)"
    accepted = set(
        session.scalars(
            select(Message.id).where(Message.status.in_(("sent", "delivered", "undelivered")))
        )
    )
    assert set(per_message) == accepted
    provider_ids = set(session.scalars(select(SandboxMessage.provider_id)))
    assert provider_ids == set(
        session.scalars(select(Message.provider_id).where(Message.id.in_(accepted)))
    )

    # The ledger balances, and charges are exactly the credits of what reached the carrier.
    session.commit()
    assert_ledger_ok(session, account.id)
    charged = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.account_id == account.id, LedgerEntry.kind == "charge"
        )
    )
    cost = session.scalar(
        select(func.coalesce(func.sum(Message.credits), 0)).where(Message.id.in_(accepted))
    )
    assert charged == cost
    assert Credits(session, account.id).balance().reserved == 0  # no reservation left open
    # Every message held credits, so (assert_ledger_ok) each one's share of its batch's
    # reservation was charged or released, and none twice.
    unreserved = session.scalar(
        select(func.count()).where(Message.id.in_(ids), Message.reservation_id.is_(None))
    )
    assert unreserved == 0
    session.commit()
