"""UTCDateTime on SQLite and PostgreSQL: aware UTC in, the same instant out, always aware."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from sendline.store.types import UTCDateTime

STAMPS = Table(
    "test_stamps", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime())
)
PARIS_WINTER = timezone(timedelta(hours=1))


@pytest.fixture
def stamps(session: Session) -> Session:
    STAMPS.create(session.connection())
    return session


def _read(session: Session) -> list[datetime | None]:
    return list(session.scalars(select(STAMPS.c.at).order_by(STAMPS.c.id)))


def test_it_handles_a_round_trip_of_aware_times(stamps: Session) -> None:
    written = [
        datetime(2026, 12, 1, 13, 40, 0, 123456, tzinfo=UTC),
        datetime(2026, 12, 1, 14, 40, 0, tzinfo=PARIS_WINTER),  # the same instant, no µs
        None,
    ]
    stamps.execute(insert(STAMPS), [{"id": i, "at": at} for i, at in enumerate(written)])
    read = _read(stamps)
    assert read == [written[0], written[1], None]
    assert [at.tzinfo for at in read if at is not None] == [UTC, UTC]
    assert read[1] is not None and read[1].hour == 13  # given back in UTC


def test_it_handles_a_naive_time_by_refusing_it(stamps: Session) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        stamps.execute(insert(STAMPS), {"id": 1, "at": datetime(2026, 12, 1, 13, 40)})


def test_it_handles_text_written_by_plain_sql_on_sqlite(stamps: Session) -> None:
    if stamps.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite stores timestamps as text; PostgreSQL has a timestamp type")
    stamps.execute(text("INSERT INTO test_stamps (id, at) VALUES (1, '2026-12-01 13:40:00')"))
    assert _read(stamps) == [datetime(2026, 12, 1, 13, 40, tzinfo=UTC)]
