"""The sandbox carrier's own records: its table, and the connections it keeps them over.

They belong to the sandbox, not to the engine: `sandbox_messages` stands for what a real
carrier knows, apart from ours, with no unique constraint on `message_ref` on purpose:
the crash test must be able to see a double send (R17).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    case,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from sendline.store.batch_filter import among
from sendline.store.batch_writes import write_rows
from sendline.store.db import SQLITE_BUSY_TIMEOUT_MS, begin_immediate
from sendline.store.models import Base
from sendline.store.types import utcnow


class SandboxMessage(Base):
    """What the sandbox carrier received: its own records, kept apart from ours so a
    test can prove each message reached the "carrier" at most once (R17)."""

    __tablename__ = "sandbox_messages"
    # No index on provider_id: the carrier never looks its records up by it (migration
    # 0006). Our side keeps its unique index on messages.provider_id, which receipts are
    # matched by; the sandbox's ids sort by time so that index grows at its end.
    __table_args__ = (
        Index("ix_sandbox_messages_message_ref", "message_ref"),
        Index("ix_sandbox_messages_report_due", "reported", "report_due_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    message_ref: Mapped[int | None] = mapped_column(Integer)
    sender: Mapped[str | None] = mapped_column(String(20))
    to: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))  # sent, delivered, undelivered, failed
    error_code: Mapped[str | None] = mapped_column(String(16))
    accepted_at: Mapped[datetime] = mapped_column(default=utcnow)
    report_due_at: Mapped[datetime] = mapped_column()
    reported: Mapped[bool] = mapped_column(default=False)


TABLE = cast(Table, SandboxMessage.__table__)
INSERT = TABLE.insert()  # Core: compiled once, cached


def outbox(session: Session, limit: int = 50) -> list[SandboxMessage]:
    """What the sandbox "sent", newest first."""
    query = select(SandboxMessage).order_by(SandboxMessage.id.desc()).limit(limit)
    return list(session.scalars(query))


def carrier_engine(session_factory: sessionmaker[Session]) -> Engine | None:
    """The carrier keeps its records over its own connections, as the separate system it
    stands for, in autocommit mode: a record is one INSERT, its own transaction, one
    round trip, with none of the sender's session machinery around it.

    PostgreSQL: without waiting for the disk (synchronous_commit off). The record is
    visible, and survives any client crash, at once; the sender's own later (synchronous)
    commit flushes it to disk too. Only a database crash could lose one, and then the
    carrier "forgot" the message: still at most once. SQLite: the same file, its WAL
    mode kept, waiting its turn for the write lock like every other writer.
    """
    bind = session_factory.kw.get("bind")
    if not isinstance(bind, Engine):
        return None
    if bind.dialect.name == "postgresql":
        return create_engine(
            bind.url,
            isolation_level="AUTOCOMMIT",
            pool_size=2,
            connect_args={"options": "-c synchronous_commit=off"},
        )
    engine = create_engine(bind.url, isolation_level="AUTOCOMMIT")
    event.listen(engine, "connect", _sqlite_carrier_connect)
    return engine


class CarrierLog:
    """The carrier's records of accepted messages, written on the raw driver connection
    (COPY on PostgreSQL): they are on the path of every send, and SQLAlchemy's
    per-statement machinery costs more than the INSERT itself. The value conversions
    are still the columns' own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"

    def insert(self, records: Sequence[dict[str, Any]]) -> None:
        """One transaction for all the records."""
        raw = self.engine.raw_connection()  # from the pool, in autocommit mode
        try:
            cursor = raw.cursor()
            try:
                if self._sqlite:  # take the write lock up front, as every Sendline writer does
                    begin_immediate(raw.dbapi_connection)
                else:
                    cursor.execute("BEGIN")
                try:
                    write_rows(raw.dbapi_connection, self.engine.dialect, TABLE, records)
                    cursor.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(Exception):  # the connection may be gone
                        cursor.execute("ROLLBACK")
                    raise
            finally:
                cursor.close()
        finally:
            raw.close()


def _sqlite_carrier_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def finish(
    session: Session, ids: Sequence[int], *, reported: bool, due_at: datetime | None = None
) -> None:
    """The network has decided: delivered, or undelivered with the code picked at send."""
    if not ids:
        return
    values: dict[str, Any] = {
        "status": case((SandboxMessage.error_code.is_(None), "delivered"), else_="undelivered"),
        "reported": reported,
    }
    if due_at is not None:
        values["report_due_at"] = due_at
    session.execute(
        update(SandboxMessage)
        .where(among(session, SandboxMessage.id, ids))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
