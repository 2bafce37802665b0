"""Database fixtures shared by every test that needs a store.

`database_url` runs a test twice: on a SQLite file in the test's tmp_path and on a
PostgreSQL database. Migrating is the slow part, so each backend is migrated once per
session: SQLite tests get a copy of a migrated template file, PostgreSQL tests share one
fresh database (`sendline_test_<random>`, dropped at the end) whose tables are emptied
before each test.

PostgreSQL is expected at 127.0.0.1:5432 (override with PG_TEST_URL, an admin URL to an
existing database). When it cannot be reached the PostgreSQL half is skipped, except
with CI=true, where that fails the run: CI must test both databases.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from sendline.store.db import create_engine_for, head_revision, upgrade
from sendline.store.db import session_factory as make_session_factory

PG_ADMIN_URL = os.environ.get("PG_TEST_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


class PostgresServer:
    """Creates throw-away databases next to the admin database, drops them at the end."""

    def __init__(self, admin: Engine) -> None:
        self._admin = admin
        self._created: list[str] = []

    def create_database(self) -> str:
        name = f"sendline_test_{uuid.uuid4().hex[:12]}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self._created.append(name)
        url = make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
        return url.render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self._admin.connect() as conn:
            for name in self._created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._created.clear()


def _unreachable(reason: str) -> None:
    message = f"PostgreSQL at {make_url(PG_ADMIN_URL).render_as_string()} unreachable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: both databases must be tested)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    reason = None
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    if reason is not None:
        admin.dispose()
        _unreachable(reason)
    server = PostgresServer(admin)
    yield server
    server.drop_all()
    admin.dispose()


@pytest.fixture(scope="session")
def _postgres_migrated(postgres_server: PostgresServer) -> str:
    url = postgres_server.create_database()
    engine = create_engine_for(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "sendline.db"
    engine = create_engine_for(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    assert not path.with_name("sendline.db-wal").exists()
    return path


def _empty_postgres(url: str) -> None:
    engine = create_engine_for(url)
    try:
        tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
        with engine.begin() as conn:
            if tables:
                names = ", ".join(f'"{t}"' for t in tables)
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            # A test may have moved the recorded revision (a database "ahead of the
            # code"); the next test gets the migrated database it asked for.
            conn.execute(text("DELETE FROM alembic_version"))
            conn.execute(
                text("INSERT INTO alembic_version VALUES (:head)"), {"head": head_revision()}
            )
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "sendline.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_postgres_migrated")
    _empty_postgres(url)
    return url


@pytest.fixture(scope="session")
def _postgres_spare(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no schema at all (nothing migrated)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    url: str = request.getfixturevalue("_postgres_spare")
    engine = create_engine_for(url)
    try:
        with engine.begin() as conn:  # one spare database, wiped for each test
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return url


@pytest.fixture
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine_for(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose transaction the test commits as it likes; closed afterwards."""
    with session_factory() as session:
        yield session
        session.rollback()
