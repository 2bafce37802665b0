"""A benchmark worker: the real Worker loop (`Worker.run`), until the blast is done.

`python -m bench.engine_worker DATABASE_URL WORKER_ID` - it prints "ready" once its loop
runs (idle: the parent starts the blast after that, as a marketer starts one while the
service runs), then works until it has seen work and none is left. Its CPU time and peak
RSS are read by the parent with getrusage(RUSAGE_CHILDREN) once it has exited.
"""

from __future__ import annotations

import sys
import threading
import time

from sqlalchemy import func, select

from sendline.engine.worker import Worker, WorkerOptions, tune_garbage_collector
from sendline.providers.sandbox import SandboxProvider
from sendline.store.db import open_engine, session_factory
from sendline.store.engine_models import AutomationRun, Message

IDLE_CHECK_AFTER = 0.5  # seconds of no work before asking whether everything is done


def work_left(factory: object) -> int:
    with factory.begin() as session:  # type: ignore[attr-defined]
        runs = session.scalar(
            select(func.count()).select_from(AutomationRun).where(AutomationRun.status == "active")
        )
        messages = session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.status.in_(("queued", "sending", "unknown")))
        )
        return int(runs or 0) + int(messages or 0)


def run_until_done(worker: Worker, factory: object) -> None:
    """Run the worker's loop; print "ready" once it idles, stop it once it has worked
    and nothing is left."""
    tune_garbage_collector()  # as `sendline worker` does
    loop = threading.Thread(target=worker.run)
    loop.start()
    while worker.idle_since is None and loop.is_alive():  # the first pass has not ended
        time.sleep(0.01)
    ready_idle_since = worker.idle_since
    print("ready", flush=True)
    while loop.is_alive():
        time.sleep(0.05)
        idle_since = worker.idle_since
        # Idle since another moment than at "ready": it has worked since (perhaps all of
        # a small blast between two looks).
        worked = idle_since != ready_idle_since
        idle = idle_since is not None and time.monotonic() - idle_since > IDLE_CHECK_AFTER
        if worked and idle and not work_left(factory):
            worker.stop()
    loop.join()


def main(url: str, worker_id: str, batch_size: int) -> None:
    engine = open_engine(url)
    factory = session_factory(engine)
    provider = SandboxProvider(factory)
    options = WorkerOptions(
        worker_id=worker_id, batch_size=batch_size, reconcile_every=3600, date_scan_every=3600
    )
    worker = Worker(factory, provider, options)
    run_until_done(worker, factory)
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 500)
