"""Engines, sessions and migrations for the two supported databases.

SQLite (the embedded default) runs in WAL mode with foreign keys on, and every
transaction starts with `BEGIN IMMEDIATE`: SQLite has one writer at a time, and taking
the write lock up front makes a read-then-write transaction (reserve credits, record
consent) wait for its turn instead of failing half-way with "database is locked".
PostgreSQL goes through psycopg 3; repositories lock the rows they change.

Migrations are Alembic scripts shipped inside the package and run programmatically:
no alembic.ini is needed at runtime.
"""

from __future__ import annotations

import fcntl
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import DatabaseUnavailable, PendingMigrations, WorkerAlreadyRunning
from sendline.store.batch_filter import IdList

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any constant works; it only has to be the same for every Sendline process.
_PG_MIGRATION_LOCK = 0x53454E44


def create_engine_for(url: str, **kwargs: Any) -> Engine:
    """An engine for a sqlite:/// or postgresql+psycopg:// URL, configured for Sendline."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise DatabaseUnavailable("SQLite needs a file path: sqlite:///path/to/file.db")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", partial(_sqlite_on_begin, threading.Lock()))
        return engine
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(parsed, pool_pre_ping=True, **kwargs)
        event.listen(engine, "connect", _postgres_on_connect)
        return engine
    raise DatabaseUnavailable(f"unsupported database URL {redact(url)}")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take over transaction control from the sqlite3 module (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _postgres_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Batch id lists in binary (see store.batch_filter.IdList).
    dbapi_connection.adapters.register_dumper(IdList, ListBinaryDumper)


def _sqlite_on_begin(pollers: threading.Lock, connection: Connection) -> None:
    begin_immediate(connection.connection.dbapi_connection, pollers=pollers)


def begin_immediate(
    dbapi_connection: Any,
    timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000,
    *,
    pollers: threading.Lock | None = None,
) -> None:
    """`BEGIN IMMEDIATE`, waiting for the write lock in short, jittered polls.

    Why not SQLite's own busy handler: it sleeps longer after each failed try (1, 2, 5
    ms ... then 100 ms a try), so a writer that has waited a while only looks at the lock
    ten times a second. Beside API processes that take it for a millisecond hundreds of
    times a second, the worker (whose batches hold it longer) kept finding it taken and
    waited for seconds: the event-to-send latency's tail. Polling every ~1 ms gives every
    writer the same chance. The handler stays on for the statements that follow (WAL
    rarely makes them wait, but a checkpoint or recovery can), only not for the BEGIN.

    `pollers` (one per engine): of the threads of this process that found the lock
    taken, only the one holding `pollers` polls; the others wait on it, asleep. Forty
    API threads polling at once each threw and caught an error every millisecond, and
    that doubled the CPU of a request from 8 to 32 connections. Other processes (the
    worker) still poll on their own, so they keep their chance at the lock.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        try:
            _take_write_lock(cursor, timeout, pollers)
        finally:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        # As SQLAlchemy would have raised it: callers tell database trouble (retry
        # later) from bugs by DBAPIError.
        raise DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error) from None
    finally:
        cursor.close()


def _take_write_lock(cursor: Any, timeout: float, pollers: threading.Lock | None) -> None:
    deadline = time.monotonic() + timeout
    if pollers is None:
        _poll_for_write_lock(cursor, deadline)
    elif not _try_write_lock(cursor, deadline):
        if not pollers.acquire(timeout=max(0.0, deadline - time.monotonic())):
            _poll_for_write_lock(cursor, deadline)  # past the deadline: one try, or BUSY
            return
        try:
            _poll_for_write_lock(cursor, deadline)
        finally:
            pollers.release()


def _try_write_lock(cursor: Any, deadline: float) -> bool:
    try:
        cursor.execute("BEGIN IMMEDIATE")
        return True
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
            raise
        return False


def _poll_for_write_lock(cursor: Any, deadline: float) -> None:
    while True:
        try:
            cursor.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0.0005, 0.0015))


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def redact(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown as a placeholder
        return "<unparseable database URL>"


@contextmanager
def translate_db_errors(engine: Engine) -> Iterator[None]:
    """Turn "cannot connect" errors into DatabaseUnavailable with a readable message."""
    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(
            f"cannot use the database at {redact(str(engine.url))}: {reason}"
        ) from None


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def current_revisions(engine: Engine) -> tuple[str, ...]:
    with translate_db_errors(engine), engine.connect() as conn:
        return tuple(MigrationContext.configure(conn).get_current_heads())


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def pending_migrations(engine: Engine) -> list[str]:
    """Revision ids not yet applied to this database, oldest first."""
    script = ScriptDirectory.from_config(_alembic_config())
    current = current_revisions(engine)
    try:
        revisions = list(script.iterate_revisions("heads", current or "base"))
    except (CommandError, RevisionError) as exc:
        raise PendingMigrations(
            f"the database is at revision {', '.join(current)}, which this version of "
            f"Sendline does not know ({exc}); is it newer than the code?",
            code="unknown_schema_revision",
        ) from None
    return [rev.revision for rev in reversed(revisions) if rev.revision not in current]


def require_current_schema(engine: Engine) -> None:
    """Refuse to work on a database whose schema is behind the code."""
    pending = pending_migrations(engine)
    if pending:
        count = len(pending)
        noun = "migration" if count == 1 else "migrations"
        raise PendingMigrations(
            f"database schema is {count} {noun} behind; run `sendline db upgrade`"
        )


def upgrade(engine: Engine) -> list[str]:
    """Apply every pending migration in one transaction; return the revisions applied."""
    pending = pending_migrations(engine)
    if not pending:
        return []
    config = _alembic_config()
    with translate_db_errors(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two processes upgrading at once would race to create the same tables.
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, "heads")
    return pending


def open_engine(url: str, *, require_current: bool = True) -> Engine:
    """The engine a command, the service or the worker runs with.

    Fails with DatabaseUnavailable when the database cannot be reached and with
    PendingMigrations when its schema is behind (unless `require_current` is False, as
    for `sendline db upgrade` itself).
    """
    engine = create_engine_for(url)
    try:
        with translate_db_errors(engine), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        if require_current:
            require_current_schema(engine)
    except (DatabaseUnavailable, PendingMigrations, DBAPIError):
        engine.dispose()
        raise
    return engine


@contextmanager
def sole_worker(url: str) -> Iterator[None]:
    """On SQLite, while this runs no other worker may run on the same file.

    SQLite is one node with one writer: a second worker would only fight the first for
    the write lock, and users who start one by mistake deserve to hear it. An exclusive
    lock on a file beside the database (`<file>.worker.lock`) is held for as long as the
    worker runs; the kernel drops it when the process ends, `kill -9` included, so a
    crash never leaves a stale lock behind. PostgreSQL: any number of workers.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        yield
        return
    path = Path(f"{parsed.database}.worker.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkerAlreadyRunning(
                f"a worker is already running on {parsed.database}: SQLite runs one "
                "(stop it first, or use PostgreSQL for several)"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
