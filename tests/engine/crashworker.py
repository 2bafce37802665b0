"""A worker for the crash-safety test: the real worker's passes (runs, the hand-off of
their messages, dispatch, receipts, reconciliation at every pass), until nothing is left.

    python -m tests.engine.crashworker DATABASE_URL [--lease 15] [--heartbeat 0.2] ...

(from the repository's root). It lives with the tests: nothing but the crash test runs it.

The test starts two of these against one PostgreSQL, `kill -9`s them at random and
restarts them; whatever they leave behind (rows claimed, calls made but not recorded)
must be settled by the survivors. It exits 0 once no run is active, no message is
queued, sending or unknown and every sent message has its receipt. SIGTERM stops it
gracefully.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import exists, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.worker import Worker, WorkerOptions, tune_garbage_collector
from sendline.providers.sandbox import SandboxProvider
from sendline.store.db import create_engine_for, session_factory
from sendline.store.engine_models import AutomationRun, Message

log = logging.getLogger("sendline.crashworker")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.engine.crashworker")
    parser.add_argument("database_url")
    parser.add_argument("--lease", type=float, default=60.0, help="seconds")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="seconds between beats")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--unknown-rate", type=float, default=0.0)
    parser.add_argument("--report-delay", type=float, default=0.2, help="seconds")
    return parser.parse_args(argv)


def finished(factory: sessionmaker[Session]) -> bool:
    """Nothing left to run, send, settle or hear back about (a `sent` message awaits its
    receipt). A carrier record nobody claims (a double send) must not keep us waiting:
    the test is there to find it."""
    with factory() as session:
        busy = select(Message.id).where(
            Message.status.in_(("queued", "sending", "unknown", "sent"))
        )
        running = select(AutomationRun.id).where(AutomationRun.status == "active")
        return not session.scalar(select(exists(busy))) and not session.scalar(
            select(exists(running))
        )


def run(args: argparse.Namespace) -> int:
    engine = create_engine_for(args.database_url)
    factory = session_factory(engine)
    sandbox = SandboxProvider(
        factory,
        failure_rate=args.failure_rate,
        unknown_rate=args.unknown_rate,
        report_delay=timedelta(seconds=args.report_delay),
    )
    options = WorkerOptions(
        worker_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        batch_size=args.batch,
        lease=timedelta(seconds=args.lease),
        heartbeat_every=args.heartbeat,
        reconcile_every=0.0,  # every pass: the test's leases are short
        date_scan_every=3600.0,
    )
    worker = Worker(factory, sandbox, options)
    tune_garbage_collector()  # as `sendline worker` does
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    worker.heartbeat.start()
    try:
        while not worker.dispatcher.stopping:
            try:
                work = worker.step()
            except DBAPIError as exc:  # a deadlock victim or a dropped connection: go on
                log.warning("pass failed, retrying: %s", str(exc).splitlines()[0])
                work = 0
            if not work:
                if finished(factory):
                    return 0
                time.sleep(0.05)
        return 0
    finally:
        worker.release_claims()
        worker.heartbeat.stop()
        sandbox.close()
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return run(parse(argv))


if __name__ == "__main__":
    sys.exit(main())
