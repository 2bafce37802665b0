"""Migrations and the schema check the service, worker and commands make."""

from __future__ import annotations

import importlib
import pkgutil
import sqlite3
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

import sendline.store
from sendline.errors import DatabaseUnavailable, PendingMigrations
from sendline.store.db import (
    MIGRATIONS_DIR,
    begin_immediate,
    create_engine_for,
    head_revision,
    open_engine,
    pending_migrations,
    require_current_schema,
    upgrade,
)
from sendline.store.models import Base


def test_it_refuses_an_unmigrated_database_and_names_the_command(
    empty_database_url: str,
) -> None:
    engine = create_engine_for(empty_database_url)
    try:
        pending = pending_migrations(engine)
        assert pending[0] == "0001" and pending[-1] == head_revision()
        with pytest.raises(PendingMigrations) as caught:
            require_current_schema(engine)
        assert caught.value.code == "pending_migrations"
        assert f"{len(pending)} migration" in caught.value.message
        assert "run `sendline db upgrade`" in caught.value.message
        with pytest.raises(PendingMigrations):
            open_engine(empty_database_url)
        assert upgrade(engine) == pending
        assert upgrade(engine) == []
        require_current_schema(engine)
    finally:
        engine.dispose()


def _diff_of_every_table(engine: Engine) -> list[object]:
    """What autogenerate would change: the migrations and the models of every table
    (the store's, and the sandbox carrier's own) must say the same thing."""
    for module in pkgutil.iter_modules(sendline.store.__path__):
        importlib.import_module(f"sendline.store.{module.name}")  # register every model
    importlib.import_module("sendline.providers.sandbox_store")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_it_handles_models_and_migrations_in_step(engine: Engine) -> None:
    assert _diff_of_every_table(engine) == []


def test_it_handles_sqlite_pragmas(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'new' / 'sendline.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    engine.dispose()


def test_it_handles_a_writer_waiting_for_sqlites_write_lock(tmp_path: Path) -> None:
    """A transaction that finds the write lock taken waits for it (short polls, not
    SQLite's backoff) and then sees what the holder committed."""
    engine = create_engine_for(f"sqlite:///{tmp_path / 'lock.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    holding, releasing = threading.Event(), []

    def hold() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            holding.set()
            time.sleep(0.3)
            releasing.append(time.monotonic())  # the commit follows

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    with engine.begin() as conn:
        got_lock = time.monotonic()
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
        # The BEGIN's own polling left the handler as the other statements need it.
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    holder.join()
    assert got_lock >= releasing[0]  # it waited for the holder, however slow the machine
    engine.dispose()


def test_it_handles_a_write_lock_held_past_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "lock.db"
    engine = create_engine_for(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            with pytest.raises(OperationalError, match="database is locked"):
                begin_immediate(raw, timeout=0.05)
            # Refused as SQLAlchemy reports database trouble, and nothing left open.
            assert not raw.in_transaction
            assert raw.execute("PRAGMA busy_timeout").fetchone() == (30000,)
    finally:
        other.rollback()
        other.close()
        engine.dispose()


def test_it_refuses_a_database_ahead_of_the_code(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(PendingMigrations) as caught:
        require_current_schema(engine)
    assert caught.value.code == "unknown_schema_revision"


def test_it_refuses_an_unreachable_database() -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        open_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert caught.value.code == "database_unavailable"
    assert "127.0.0.1" in caught.value.message


def test_it_handles_migrating_messages_in_flight_to_batch_reservations(
    empty_database_url: str,
) -> None:
    """0005: a message queued before it keeps the free part of its own reservation, so
    a release after the upgrade returns its credits to the right buckets."""
    engine = create_engine_for(empty_database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0004")
        with engine.begin() as conn:
            # In SQL: the ORM's Account has the columns of later migrations too.
            account_id = conn.execute(
                text(
                    "INSERT INTO accounts (name, product_line, tier, last_purchase_on, "
                    "sms_addon, optout_clause, optout_language, help_text, max_segments, "
                    "quiet_start, quiet_end, frequency_cap, credit_rates, created_at) "
                    "VALUES ('Old', 'marketing', 'plus', :d, false, 'Reply STOP to opt out', "
                    "'en', 'Help', 1, 480, 1260, 3, '{\"default\": 1}', :t) RETURNING id"
                ),
                {"d": date(2022, 6, 1), "t": datetime(2026, 11, 30, tzinfo=UTC)},
            ).scalar_one()
            reserve = conn.execute(
                text(
                    "INSERT INTO credit_ledger (account_id, kind, amount, free_delta, "
                    "purchased_delta, reserved_delta, created_at) "
                    "VALUES (:a, 'reserve', 5, -3, -2, 5, :t) RETURNING id"
                ),
                {"a": account_id, "t": datetime(2026, 11, 30, tzinfo=UTC)},
            ).scalar_one()
            for reservation in (reserve, None):
                conn.execute(
                    text(
                        "INSERT INTO messages (account_id, kind, segments, credits, "
                        "reservation_id, status, attempts, created_at, updated_at) "
                        "VALUES (:a, 'marketing', 5, 5, :r, 'queued', 0, :t, :t)"
                    ),
                    {"a": account_id, "r": reservation, "t": datetime(2026, 11, 30, tzinfo=UTC)},
                )
        applied = upgrade(engine)  # 0005 onwards, up to the head (later ones too)
        assert applied[:2] == ["0005", "0006"] and applied[-1] == head_revision()
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT credits_free FROM messages ORDER BY id")).all()
        assert [row[0] for row in rows] == [3, 0]
    finally:
        engine.dispose()
