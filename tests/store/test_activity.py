"""The activity log's one writer (`store/activity.py`) on both databases: events in
order with their exact data, in one batch, inside the caller's transaction; and the
consent changes a CSV import makes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendline.store import activity
from sendline.store.activity import NewEvent
from sendline.store.contacts import Contacts
from sendline.store.event_models import AccountEvent
from tests.store.conftest import MakeAccount
from tests.store.test_import import DISCLOSURE, run, write_csv

AT = datetime(2026, 12, 1, 9, 30, 15, 250_000, tzinfo=UTC)


def _rows(session: Session) -> list[tuple[Any, ...]]:
    found = [
        (e.account_id, e.kind, e.message_id, e.contact_id, dict(e.data), e.created_at)
        for e in session.scalars(select(AccountEvent).order_by(AccountEvent.id))
    ]
    session.commit()
    return found


def test_it_writes_events_in_order_with_their_data(
    session: Session, make_account: MakeAccount
) -> None:
    acme = make_account("Acme")
    data = {"status": "sent", "detail": 'é ✓ "quoted"', "error_code": None, "provider_id": "SM1"}
    activity.record(
        session,
        [
            NewEvent(acme.id, "message.status", 7, 3, data),
            NewEvent(acme.id, "contact.opted_out", None, 3, {"method": "keyword", "source": "x"}),
            NewEvent(acme.id, "inbound.received", contact_id=None, data={"inbound_id": 1}),
        ],
        AT,
    )
    session.commit()
    assert _rows(session) == [
        (acme.id, "message.status", 7, 3, data, AT),
        (acme.id, "contact.opted_out", None, 3, {"method": "keyword", "source": "x"}, AT),
        (acme.id, "inbound.received", None, None, {"inbound_id": 1}, AT),
    ]


def test_it_writes_a_large_batch_at_once(session: Session, make_account: MakeAccount) -> None:
    acme = make_account("Acme")
    keys = [(message_id, acme.id, message_id % 7 or None) for message_id in range(1, 5001)]
    activity.message_statuses(session, keys, "delivered", AT, error_code="0")
    session.commit()
    rows = _rows(session)
    assert [(r[2], r[3]) for r in rows] == [(m, c) for m, _, c in keys]
    expected = {"status": "delivered", "detail": None, "error_code": "0"}
    assert {r[1] for r in rows} == {"message.status"}
    assert all(r[4] == expected for r in rows)


def test_it_writes_nothing_when_the_change_is_rolled_back(
    session: Session, make_account: MakeAccount
) -> None:
    acme = make_account("Acme")
    activity.message_statuses(session, [(1, acme.id, None)], "queued", AT)
    session.rollback()
    activity.record(session, [], AT)  # nothing to write: no statement at all
    session.commit()
    assert _rows(session) == []


def test_it_refuses_an_unknown_kind(session: Session, make_account: MakeAccount) -> None:
    acme = make_account("Acme")
    with pytest.raises(ValueError, match="unknown event kind"):
        activity.record(session, [NewEvent(acme.id, "message.exploded")])


def test_it_keeps_inbound_bodies_small(session: Session, make_account: MakeAccount) -> None:
    acme = make_account("Acme")
    activity.inbound_received(session, acme.id, None, 5, "x" * 5000, "none", AT)
    session.commit()
    [row] = _rows(session)
    assert row[4] == {"inbound_id": 5, "body": "x" * activity.MAX_BODY, "action": "none"}


def test_it_records_the_consent_an_import_changes(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    acme = make_account("Acme")
    yes = write_csv(
        tmp_path / "yes.csv",
        [["email", "consent"], ["ann@example.com", "yes"], ["bob@example.com", ""]],
    )
    no = write_csv(tmp_path / "no.csv", [["email", "consent"], ["ann@example.com", "no"]])
    run(session, acme.id, yes, disclosure=DISCLOSURE, consent_source="crm.csv")
    run(session, acme.id, no, disclosure=DISCLOSURE, consent_source="crm.csv")
    run(
        session, acme.id, no, disclosure=DISCLOSURE, consent_source="crm.csv"
    )  # no change: no event
    ann = Contacts(session, acme.id).resolve("ann@example.com").id
    session.commit()
    assert [(r[1], r[3], r[4]) for r in _rows(session)] == [
        ("contact.opted_in", ann, {"method": "import", "source": "crm.csv"}),
        ("contact.opted_out", ann, {"method": "import", "source": "crm.csv"}),
    ]
