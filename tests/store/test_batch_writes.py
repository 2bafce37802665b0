"""The batch write path (store/batch_writes.py), on SQLite and PostgreSQL: what it
writes must read back exactly as if the ORM had written it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.batch_writes import allocate_ids, insert_rows, update_rows
from sendline.store.engine_models import Message
from tests.engine.factories import make_world, queue_message

MESSAGES = cast(Table, Message.__table__)
SANDBOX = cast(Table, SandboxMessage.__table__)
AT = datetime(2026, 11, 25, 15, 30, 12, 345678, tzinfo=UTC)


def _carrier_record(provider_id: str, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "provider_id": provider_id,
        "message_ref": 7,
        "sender": None,
        "to": "+14155550100",  # "to" is a reserved word: the writer must quote it
        "body": "Spring sale, l'été, 20% off\tnow\nReply STOP to opt out 😀",
        "segments": 2,
        "status": "sent",
        "error_code": None,
        "accepted_at": AT,
        "report_due_at": AT + timedelta(seconds=2),
    }
    return record | overrides


def test_it_handles_an_insert_read_back_like_the_orm(session: Session) -> None:
    insert_rows(session, SANDBOX, [_carrier_record("SMa"), _carrier_record("SMb", sender=None)])
    session.commit()
    rows = session.scalars(select(SandboxMessage).order_by(SandboxMessage.provider_id)).all()
    assert [r.provider_id for r in rows] == ["SMa", "SMb"]
    first = rows[0]
    assert first.to == "+14155550100"
    assert first.body == "Spring sale, l'été, 20% off\tnow\nReply STOP to opt out 😀"
    assert first.accepted_at == AT and first.accepted_at.tzinfo is not None
    assert first.report_due_at == AT + timedelta(seconds=2)
    assert first.reported is False  # left out: the column's default
    assert first.sender is None and first.error_code is None


def test_it_handles_a_whole_second_as_the_orm_writes_it(session: Session) -> None:
    # SQLite compares timestamps as text: a row written here must match a value bound
    # by SQLAlchemy, microseconds included even when they are zero.
    whole = AT.replace(microsecond=0)
    insert_rows(session, SANDBOX, [_carrier_record("SMw", accepted_at=whole)])
    session.commit()
    same = select(SandboxMessage.provider_id).where(SandboxMessage.accepted_at == whole)
    assert session.scalars(same).all() == ["SMw"]


def test_it_handles_nothing_to_write(session: Session) -> None:
    insert_rows(session, SANDBOX, [])
    update_rows(session, MESSAGES, [])
    session.commit()
    assert session.scalars(select(SandboxMessage)).all() == []


def test_it_handles_a_failed_insert_without_a_partial_write(session: Session) -> None:
    insert_rows(session, SANDBOX, [_carrier_record("SMold") | {"id": 1}])
    session.commit()
    again = [_carrier_record("SMnew") | {"id": 2}, _carrier_record("SMdup") | {"id": 1}]
    with pytest.raises(Exception):  # noqa: B017 - the driver's own unique-violation error
        insert_rows(session, SANDBOX, again)  # the second row's id is taken
    session.rollback()
    ids = session.scalars(select(SandboxMessage.provider_id)).all()
    assert ids == ["SMold"]


def _three_queued(session: Session) -> list[Message]:
    world = make_world(session)
    return [queue_message(session, world.account, world.contact) for _ in range(3)]


def test_it_handles_per_row_updates_by_id(session: Session) -> None:
    first, second, untouched = _three_queued(session)
    later = AT + timedelta(minutes=5)
    update_rows(
        session,
        MESSAGES,
        [
            {"id": first.id, "provider_id": "SM1", "due_at": later, "detail": None},
            {"id": second.id, "provider_id": None, "due_at": AT, "detail": 'it\'s "quoted"'},
        ],
    )
    session.commit()
    session.expire_all()
    got = {m.id: m for m in session.scalars(select(Message))}
    assert (got[first.id].provider_id, got[first.id].due_at) == ("SM1", later)
    assert got[second.id].provider_id is None
    assert got[second.id].detail == 'it\'s "quoted"'
    assert got[second.id].due_at == AT
    assert got[untouched.id].due_at == untouched.due_at and got[untouched.id].provider_id is None


def test_it_handles_values_shared_by_every_row(session: Session) -> None:
    first, second, untouched = _three_queued(session)
    later = AT + timedelta(minutes=5)
    update_rows(
        session,
        MESSAGES,
        [{"id": first.id, "provider_id": "SM1"}, {"id": second.id, "provider_id": "SM2"}],
        fixed={"status": "sent", "sent_at": later, "detail": None},
    )
    session.commit()
    session.expire_all()
    got = {m.id: m for m in session.scalars(select(Message))}
    assert [(got[m.id].status, got[m.id].provider_id) for m in (first, second)] == [
        ("sent", "SM1"),
        ("sent", "SM2"),
    ]
    assert got[first.id].sent_at == later and got[second.id].detail is None
    assert (got[untouched.id].status, got[untouched.id].sent_at) == ("queued", None)


def test_it_handles_ids_taken_in_advance_without_collisions(session: Session) -> None:
    world = make_world(session)
    before = queue_message(session, world.account, world.contact)
    taken = allocate_ids(session, "messages", 3)
    session.commit()
    assert len(set(taken)) == 3 and min(taken) > before.id
    # The next ordinary insert never reuses them, even if they were never written.
    after = queue_message(session, world.account, world.contact)
    assert after.id > max(taken)
    assert allocate_ids(session, "messages", 0) == []


def test_it_handles_ids_after_the_newest_row_was_deleted(session: Session) -> None:
    # AUTOINCREMENT on SQLite (a sequence on PostgreSQL): an id once used is never
    # handed out again, even when its row is gone.
    world = make_world(session)
    newest = queue_message(session, world.account, world.contact)
    session.delete(session.get(Message, newest.id))
    session.commit()
    [fresh] = allocate_ids(session, "messages", 1)
    assert fresh > newest.id


def test_it_handles_a_table_that_does_not_take_ids_in_advance(session: Session) -> None:
    with pytest.raises(ValueError, match="accounts"):
        allocate_ids(session, "accounts", 1)
