"""/api/v1/messages on both databases, with real data: the list and its filters and
pages, a message with its status history, cancel (credits released through the
ledger), release of held messages once credits are bought, the test send, and tenant
isolation on every route (another account's message is 404, never listed)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.outbox import claim_due
from sendline.engine.pipeline import Pipeline, SmsRequest
from sendline.services.api_keys import create_key
from sendline.store.credits import Credits
from sendline.store.engine_models import Message
from sendline.store.event_models import AccountEvent
from sendline.store.models import Account, Contact
from tests.api.conftest import Tenant
from tests.api.test_v1 import problem_of
from tests.engine.factories import (
    assert_ledger_ok,
    make_account,
    make_contact,
    message,
    queue_message,
    reservation_state,
)

URL = "/api/v1/messages"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _account(session: Session, tenant: Tenant) -> Account:
    found = session.get(Account, tenant.account_id)
    assert found is not None
    return found


def _contact(session: Session, tenant: Tenant) -> Contact:
    found = session.get(Contact, tenant.contact_id)
    assert found is not None
    return found


def _queued(session: Session, tenant: Tenant, **kwargs: Any) -> int:
    return queue_message(session, _account(session, tenant), _contact(session, tenant), **kwargs).id


def _held(
    session: Session, account: Account, contact: Contact, body: str = "Hi %FIRSTNAME%"
) -> int:
    """A message the pipeline held (an account without the credits for it)."""
    ids: list[int] = []
    Pipeline(account).queue_many(
        session,
        [(contact, SmsRequest(template=body))],
        datetime.now(UTC),
        before_insert=lambda rows: ids.extend(row["id"] for row in rows),
    )
    session.commit()
    assert message(session, ids[0]).status == "held"
    return ids[0]


def _set(session: Session, message_id: int, **values: Any) -> None:
    session.execute(update(Message).where(Message.id == message_id).values(**values))
    session.commit()


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


def _broke(session: Session, session_factory: sessionmaker[Session]) -> Tenant:
    """An account with no credits, a consenting contact and a key."""
    account = make_account(session, "Initech", credits=0)
    contact = make_contact(session, account, "+14158675307")
    return Tenant(account.id, contact.id, create_key(session_factory, "Initech", "t").key)


# -- list --------------------------------------------------------------------------------


def test_it_lists_newest_first_with_why_each_waits(
    client: TestClient, session: Session, acme: Tenant
) -> None:
    now = datetime.now(UTC)
    due_now = _queued(session, acme)
    later = _queued(session, acme, due_at=now + timedelta(hours=3))
    _set(session, later, detail="rate-limited", error_code="30001")
    body = client.get(URL, headers=acme.headers).json()
    assert [m["id"] for m in body["data"]] == [later, due_now]
    assert body["next_cursor"] is None
    first, second = body["data"]
    assert second["waiting"] == "due now"
    assert first["waiting"].startswith("retry after 30001: due ")
    assert (second["status"], second["to"], second["contact_id"]) == (
        "queued",
        "+14158675309",
        acme.contact_id,
    )
    assert (second["credits"], second["segments"], second["held_reason"]) == (1, 1, None)


def test_it_pages_through_every_message_once(
    client: TestClient, session: Session, acme: Tenant
) -> None:
    made = [_queued(session, acme) for _ in range(7)]
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = client.get(URL, headers=acme.headers, params=params).json()
        seen += [m["id"] for m in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(made, reverse=True)


def test_it_filters_by_each_parameter(
    client: TestClient, session: Session, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    other = make_contact(session, _account(session, acme), "+14158675301")
    old = _queued(session, acme, created_at=T0 - timedelta(days=2))
    sent = _queued(session, acme, created_at=T0)
    _set(session, sent, status="sent", automation_id=7)
    to_other = queue_message(session, _account(session, acme), other, created_at=T0).id
    held = _held(session, _account(session, acme), _contact(session, acme), body="Hi %NOPE%")
    _set(session, held, created_at=T0 + timedelta(days=1))

    def ids(**params: Any) -> list[int]:
        return _ids(client.get(URL, headers=acme.headers, params=params))

    assert ids() == [held, to_other, sent, old]
    assert ids(status="sent") == [sent]
    assert ids(status="held") == [held]
    assert ids(reason="template_error") == [held]
    assert ids(reason="insufficient_credits") == []
    assert ids(automation_id=7) == [sent]
    assert ids(contact_id=other.id) == [to_other]
    assert ids(contact_id=acme.contact_id) == [held, sent, old]
    assert ids(created_after="2026-11-20T12:00:00Z") == [held, to_other, sent]
    assert ids(created_before="2026-11-20T12:00:00Z") == [old]
    assert ids(created_after="2026-11-20T00:00:00", created_before="2026-11-21T00:00:00") == [
        to_other,
        sent,
    ]
    # An offset is honored: 13:00+01:00 is 12:00 UTC.
    assert ids(created_after="2026-11-20T13:00:00+01:00", status="queued") == [to_other]
    assert ids(status="sent", contact_id=other.id) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"reason": "bad_luck"}, "reason"),
        ({"cursor": "bm9wZQ"}, "cursor"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"contact_id": 0}, "contact_id"),
        ({"limit": 201}, "limit"),
    ],
)
def test_it_refuses_a_bad_filter_with_422_naming_it(
    client: TestClient, acme: Tenant, params: dict[str, Any], field: str
) -> None:
    body = problem_of(client.get(URL, headers=acme.headers, params=params), 422, "invalid_input")
    assert body["field"] == field


# -- one message and its history -----------------------------------------------------------


def test_it_shows_a_message_with_its_status_history(
    client: TestClient, session: Session, acme: Tenant
) -> None:
    mine = _queued(session, acme)
    other = _queued(session, acme)
    events = [
        (mine, "message.held", {"reason": "insufficient_credits", "detail": "no credits"}),
        (other, "message.status", {"status": "queued"}),
        (mine, "message.status", {"status": "queued", "detail": None}),
        (mine, "contact.opted_out", {"method": "keyword"}),  # not the message's history
        (mine, "message.status", {"status": "sent", "error_code": None}),
    ]
    for message_id, kind, data in events:
        session.add(
            AccountEvent(account_id=acme.account_id, kind=kind, message_id=message_id, data=data)
        )
    session.commit()
    body = client.get(f"{URL}/{mine}", headers=acme.headers).json()
    assert (body["id"], body["status"], body["waiting"]) == (mine, "queued", "due now")
    assert [(h["status"], h["reason"]) for h in body["history"]] == [
        ("held", "insufficient_credits"),
        ("queued", None),
        ("sent", None),
    ]
    assert body["history"][0]["detail"] == "no credits"
    assert client.get(f"{URL}/{other}", headers=acme.headers).json()["history"][0]["status"] == (
        "queued"
    )


def test_it_shows_an_empty_history_and_404_for_no_message(
    client: TestClient, session: Session, acme: Tenant
) -> None:
    mine = _queued(session, acme)
    assert client.get(f"{URL}/{mine}", headers=acme.headers).json()["history"] == []
    problem_of(client.get(f"{URL}/{mine + 1}", headers=acme.headers), 404, "not_found")
    problem_of(client.get(f"{URL}/99999999999", headers=acme.headers), 422, "invalid_input")


# -- cancel --------------------------------------------------------------------------------


def test_it_cancels_a_queued_message_releasing_its_credits(
    client: TestClient, session: Session, acme: Tenant
) -> None:
    mine = _queued(session, acme, segments=3)
    credits = Credits(session, acme.account_id)
    assert (credits.balance().available, credits.balance().reserved) == (997, 3)
    session.commit()
    response = client.post(f"{URL}/{mine}/cancel", headers=acme.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["detail"]) == (
        "canceled",
        "canceled by the user",
    )
    stored = message(session, mine)
    assert stored.status == "canceled"
    assert reservation_state(session, acme.account_id, stored) == "released"
    balance = Credits(session, acme.account_id).balance()
    session.commit()
    assert (balance.available, balance.reserved) == (1000, 0)
    assert_ledger_ok(session, acme.account_id)
    # Twice is a conflict, and releases nothing more.
    again = client.post(f"{URL}/{mine}/cancel", headers=acme.headers)
    assert problem_of(again, 409, "message_not_cancelable")["detail"].startswith(
        f"message {mine} is canceled"
    )
    assert_ledger_ok(session, acme.account_id)


def test_it_cancels_a_held_message_with_no_credits_to_release(
    client: TestClient, session: Session, session_factory: sessionmaker[Session]
) -> None:
    broke = _broke(session, session_factory)
    held = _held(session, _account(session, broke), _contact(session, broke))
    response = client.post(f"{URL}/{held}/cancel", headers=broke.headers)
    assert response.json()["status"] == "canceled"
    assert_ledger_ok(session, broke.account_id)


@pytest.mark.parametrize("status", ["sending", "unknown", "sent", "delivered", "failed"])
def test_it_refuses_to_cancel_a_message_a_worker_took_with_409(
    client: TestClient, session: Session, acme: Tenant, status: str
) -> None:
    mine = _queued(session, acme)
    _set(session, mine, status=status)
    response = client.post(f"{URL}/{mine}/cancel", headers=acme.headers)
    problem_of(response, 409, "message_not_cancelable")
    assert message(session, mine).status == status
    balance = Credits(session, acme.account_id).balance()
    session.commit()
    assert balance.reserved == 1  # still reserved: nothing settled by the refusal


# -- release -------------------------------------------------------------------------------


def test_it_releases_held_messages_once_credits_are_bought(
    client: TestClient, session: Session, session_factory: sessionmaker[Session]
) -> None:
    broke = _broke(session, session_factory)
    account, contact = _account(session, broke), _contact(session, broke)
    first, second = _held(session, account, contact), _held(session, account, contact)
    assert message(session, first).held_reason == "insufficient_credits"
    still = client.post(f"{URL}/release", headers=broke.headers, json={"ids": [first]})
    assert still.json() == {
        "data": [
            {
                "message_id": first,
                "status": "held",
                "reason": "insufficient_credits",
                "detail": still.json()["data"][0]["detail"],
                "due_at": None,
            }
        ],
        "queued": 0,
        "still_held": 1,
    }
    Credits(session, broke.account_id).purchase(10)
    session.commit()
    response = client.post(
        f"{URL}/release", headers=broke.headers, json={"reason": "insufficient_credits"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(r["message_id"], r["status"]) for r in body["data"]] == [
        (first, "queued"),
        (second, "queued"),
    ]
    assert (body["queued"], body["still_held"]) == (2, 0)
    assert message(session, first).reservation_id is not None
    balance = Credits(session, broke.account_id).balance()
    session.commit()
    assert (balance.available, balance.reserved) == (8, 2)
    assert_ledger_ok(session, broke.account_id)


def test_it_refuses_a_release_naming_no_held_message(
    client: TestClient, session: Session, acme: Tenant
) -> None:
    queued = _queued(session, acme)
    problem_of(
        client.post(f"{URL}/release", headers=acme.headers, json={"ids": [queued]}),
        404,
        "not_found",
    )
    for body in ({}, {"ids": [1], "reason": "no_consent"}, {"ids": []}, {"ids": [0]}):
        problem_of(
            client.post(f"{URL}/release", headers=acme.headers, json=body), 422, "invalid_input"
        )
    response = client.post(f"{URL}/release", headers=acme.headers, json={"reason": "nope"})
    problem_of(response, 422, "invalid_input")


# -- the test send -------------------------------------------------------------------------


def test_it_queues_a_test_message_to_a_consenting_contact(
    client: TestClient, session: Session, acme: Tenant
) -> None:
    response = client.post(
        f"{URL}/test",
        headers=acme.headers,
        json={"contact_id": acme.contact_id, "body": "Hi %FIRSTNAME%"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["transactional"], body["contact_id"]) == (
        "queued",
        True,
        acme.contact_id,
    )
    assert body["body"].startswith("Hi Ada")
    by_phone = client.post(f"{URL}/test", headers=acme.headers, json={"phone": "+1 415 867 5309"})
    assert by_phone.status_code == 201, by_phone.text
    assert by_phone.json()["body"].startswith("Sendline test message")
    assert _ids(client.get(URL, headers=acme.headers)) == [by_phone.json()["id"], body["id"]]
    assert_ledger_ok(session, acme.account_id)


def _count(session: Session, account_id: int) -> int:
    found = session.scalar(select(func.count()).where(Message.account_id == account_id))
    session.commit()
    return int(found or 0)


def test_it_refuses_a_test_send_a_check_would_hold_storing_nothing(
    client: TestClient, session: Session, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    shy = make_contact(session, _account(session, acme), "+14158675302", consent=False)
    cases = [
        ({"contact_id": shy.id}, 422, "no_consent", "contact_id"),
        ({"contact_id": acme.contact_id, "body": "Hi %NOPE%"}, 422, "template_error", "body"),
        ({"phone": "+14158675399"}, 404, "not_found", "phone"),
        ({"phone": "12"}, 422, "invalid_phone", "phone"),
        ({"contact_id": 123456}, 404, "not_found", "contact_id"),
    ]
    for payload, status, code, field in cases:
        response = client.post(f"{URL}/test", headers=acme.headers, json=payload)
        assert problem_of(response, status, code).get("field") == field, payload
    broke = _broke(session, session_factory)
    response = client.post(
        f"{URL}/test", headers=broke.headers, json={"contact_id": broke.contact_id}
    )
    problem_of(response, 402, "insufficient_credits")
    both = {"contact_id": acme.contact_id, "phone": "+14158675309"}
    problem_of(client.post(f"{URL}/test", headers=acme.headers, json=both), 422, "invalid_input")
    assert _count(session, acme.account_id) == 0
    assert _count(session, broke.account_id) == 0


# -- tenant isolation ----------------------------------------------------------------------


def test_it_answers_404_for_another_accounts_message_on_every_route(
    client: TestClient, session: Session, acme: Tenant, globex: Tenant
) -> None:
    queued = _queued(session, acme)
    _set(session, queued, automation_id=3)
    held = _queued(session, acme)
    _set(session, held, status="held", held_reason="no_consent", reservation_id=None)
    ours = _queued(session, globex)
    _set(session, ours, status="held", held_reason="no_consent", reservation_id=None)
    g = globex.headers
    problem_of(client.get(f"{URL}/{queued}", headers=g), 404, "not_found")
    problem_of(client.post(f"{URL}/{queued}/cancel", headers=g), 404, "not_found")
    problem_of(
        client.post(f"{URL}/release", headers=g, json={"ids": [ours, held]}), 404, "not_found"
    )
    assert _ids(client.get(URL, headers=g)) == [ours]
    for params in ({"contact_id": acme.contact_id}, {"automation_id": 3}, {"status": "queued"}):
        assert _ids(client.get(URL, headers=g, params=params)) == []
    test = client.post(f"{URL}/test", headers=g, json={"contact_id": acme.contact_id})
    problem_of(test, 404, "not_found")
    problem_of(
        client.post(f"{URL}/test", headers=g, json={"phone": "+14158675309"}), 404, "not_found"
    )
    # Nothing of acme's changed, nor globex's own held one (a release is all or nothing).
    assert (message(session, queued).status, message(session, held).status) == ("queued", "held")
    assert message(session, ours).status == "held"
    assert _count(session, globex.account_id) == 1
    assert _ids(client.get(URL, headers=acme.headers)) == [held, queued]


def test_it_loses_a_cancel_to_a_worker_that_claimed_the_message_first(
    client: TestClient, session: Session, session_factory: sessionmaker[Session], acme: Tenant
) -> None:
    mine = _queued(session, acme)
    with ThreadPoolExecutor(1) as pool:
        with session_factory.begin() as worker:
            assert [job.id for job in claim_due(worker, "w1", datetime.now(UTC), 10)] == [mine]
            # The cancel waits for the claim's row lock (PostgreSQL) or the write lock
            # (SQLite), then finds the row no longer queued.
            pending = pool.submit(client.post, f"{URL}/{mine}/cancel", headers=acme.headers)
            time.sleep(0.3)
            assert not pending.done()
        problem_of(pending.result(timeout=30), 409, "message_not_cancelable")
    assert message(session, mine).status == "sending"
    balance = Credits(session, acme.account_id).balance()
    session.commit()
    assert balance.reserved == 1  # the worker's to settle: the cancel released nothing


def test_it_leaves_a_worker_nothing_to_claim_once_canceled(
    client: TestClient, session: Session, session_factory: sessionmaker[Session], acme: Tenant
) -> None:
    mine = _queued(session, acme)
    assert client.post(f"{URL}/{mine}/cancel", headers=acme.headers).status_code == 200
    with session_factory.begin() as worker:
        assert claim_due(worker, "w1", datetime.now(UTC), 10) == []
    assert_ledger_ok(session, acme.account_id)


def test_it_records_a_test_sends_history_through_its_cancel(
    client: TestClient, acme: Tenant
) -> None:
    """The engine's own writes, not rows made by the test: queued by the pipeline,
    canceled by the route, both in the message's history in that order."""
    sent = client.post(f"{URL}/test", headers=acme.headers, json={"contact_id": acme.contact_id})
    assert sent.status_code == 201, sent.text
    mine = sent.json()["id"]
    assert client.post(f"{URL}/{mine}/cancel", headers=acme.headers).status_code == 200

    history = client.get(f"{URL}/{mine}", headers=acme.headers).json()["history"]

    assert [(h["status"], h["detail"]) for h in history] == [
        ("queued", None),
        ("canceled", "canceled by the user"),
    ]
