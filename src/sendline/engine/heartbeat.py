"""A worker's heartbeat: how the others learn, within seconds, that it died.

A message a worker claimed stays `sending` under its name until it records the outcome.
If the worker is `kill -9`ed, the only sign used to be the claim's age: reconciliation
waited for the lease (60 s by default) before looking such a row up. Now each worker
renews its row in `workers` every `every` seconds from a thread of its own, declaring
when it is to be taken for dead (`expires_at`, `misses` beats ahead); a claim whose
worker's row has expired is reconciled at once (`outbox.claim_stale`).

Why this is safe (R17): reconciliation looks a message up at the provider and requeues
it only when the provider never got it, so the dead worker must not still be calling.
The beat runs on its own thread, so a long provider call does not stop it: a live
worker is never taken for dead for being busy. And a worker whose beats stop reaching
the database (the database is away, the thread is stuck) stops calling the provider
once its declared expiry is half gone (`fresh`), as it does at half its lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from sendline.store.engine_models import WorkerHeartbeat

log = logging.getLogger("sendline.worker")

# Rows of workers long gone (killed, never restarted under the same id) are deleted
# after this; their claims, if any were left, fall back to the lease, long past by then.
FORGET_AFTER = timedelta(days=1)


class Heartbeat:
    """One worker's heartbeat row, renewed by a daemon thread while `running`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        worker_id: str,
        *,
        every: float,
        misses: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self.worker_id = worker_id
        self.every = every
        self.window = timedelta(seconds=every * misses)
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Monotonic time until which our calls are safe: half the declared window after
        # the last beat that reached the database. Before the first beat, none are.
        self._safe_until = 0.0

    def fresh(self) -> bool:
        """Whether this worker may still call the provider (see the module docstring)."""
        return self._thread is None or time.monotonic() < self._safe_until

    def beat(self) -> None:
        """Renew the row now (the thread does it every `every` seconds)."""
        started = time.monotonic()
        now = self._clock()
        values = {"heartbeat_at": now, "expires_at": now + self.window}
        with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            maker = pg_insert if dialect == "postgresql" else sqlite_insert
            statement = maker(WorkerHeartbeat).values(id=self.worker_id, started_at=now, **values)
            session.execute(statement.on_conflict_do_update(index_elements=["id"], set_=values))
        self._safe_until = started + self.window.total_seconds() / 2

    def start(self) -> None:
        """Beat once (the worker is alive from here on), then every `every` seconds."""
        self.beat()
        with self._sessions.begin() as session:
            old = self._clock() - FORGET_AFTER
            session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.expires_at < old))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sendline-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and expire the row: call once this worker's claims are released
        and it calls the provider no more, so whatever claim is left is free at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._sessions.begin() as session:
            now = self._clock()
            session.execute(
                update(WorkerHeartbeat)
                .where(WorkerHeartbeat.id == self.worker_id)
                .values(expires_at=now, heartbeat_at=now)
            )

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - a missed beat is safe (`fresh`); go on
                log.warning("worker %s: heartbeat failed", self.worker_id, exc_info=True)
