"""A bare sending worker for the crash-safety test: dispatch, receipts, reconciliation,
in a loop, until the outbox is empty.

    python -m sendline.engine.crashworker DATABASE_URL [--lease 2] [--batch 50] ...

The test starts two of these against one PostgreSQL, `kill -9`s them at random and
restarts them; whatever they leave behind (rows claimed, calls made but not recorded)
must be settled by the survivors. It exits 0 once no message is queued, sending or
unknown and every sent message has its receipt. SIGTERM stops it gracefully.
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
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.dispatcher import Dispatcher
from sendline.providers.sandbox import SandboxProvider
from sendline.store.db import create_engine_for, session_factory
from sendline.store.engine_models import Message

log = logging.getLogger("sendline.crashworker")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sendline.engine.crashworker")
    parser.add_argument("database_url")
    parser.add_argument("--lease", type=float, default=2.0, help="seconds")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--unknown-rate", type=float, default=0.0)
    parser.add_argument("--report-delay", type=float, default=0.2, help="seconds")
    return parser.parse_args(argv)


def finished(factory: sessionmaker[Session]) -> bool:
    """Nothing left to send, settle or hear back about (a `sent` message awaits its
    receipt). A carrier record nobody claims (a double send) must not keep us waiting:
    the test is there to find it."""
    with factory() as session:
        busy = select(Message.id).where(
            Message.status.in_(("queued", "sending", "unknown", "sent"))
        )
        return not session.scalar(select(exists(busy)))


def run(args: argparse.Namespace) -> int:
    engine = create_engine_for(args.database_url)
    factory = session_factory(engine)
    sandbox = SandboxProvider(
        factory,
        failure_rate=args.failure_rate,
        unknown_rate=args.unknown_rate,
        report_delay=timedelta(seconds=args.report_delay),
    )
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    dispatcher = Dispatcher(
        factory,
        sandbox,
        worker_id=worker_id,
        batch_size=args.batch,
        lease=timedelta(seconds=args.lease),
    )
    signal.signal(signal.SIGTERM, lambda *_: dispatcher.request_stop())
    try:
        while not dispatcher.stopping:
            try:
                work = dispatcher.dispatch_due()
                work += len(sandbox.tick(datetime.now(UTC)))
                work += dispatcher.reconcile()
            except DBAPIError as exc:  # a deadlock victim or a dropped connection: go on
                log.warning("pass failed, retrying: %s", str(exc).splitlines()[0])
                work = 0
            if not work:
                if finished(factory):
                    return 0
                time.sleep(0.05)
        return 0
    finally:
        dispatcher.release_claims()
        sandbox.close()
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return run(parse(argv))


if __name__ == "__main__":
    sys.exit(main())
