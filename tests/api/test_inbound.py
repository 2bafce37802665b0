"""/api/v1/inbound on both databases, with texts received as a carrier delivers them:
the list (review and contact filters, pages), one text, the review queue's decisions
(an opt-out cancels what is pending and releases its credits), and tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from sendline.services.inbox import receive_text
from sendline.store.credits import Credits
from sendline.store.engine_models import InboundMessage
from sendline.store.models import Account, Contact
from tests.api.conftest import Tenant
from tests.api.test_v1 import problem_of
from tests.engine.factories import SENDER, assert_ledger_ok, message, queue_message

URL = "/api/v1/inbound"
ACME_PHONE = "+14158675309"


def _text(
    sessions: sessionmaker[Session], tenant: Tenant, body: str, phone: str = ACME_PHONE
) -> int:
    """A text to the tenant's number; returns its id (the newest inbound row)."""
    receive_text(
        sessions, from_number=phone, body=body, to_number=SENDER, account_id=tenant.account_id
    )
    with sessions() as session:
        found = session.query(InboundMessage.id).order_by(InboundMessage.id.desc()).first()
    assert found is not None
    return int(found[0])


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


def test_it_lists_texts_newest_first_with_what_each_did(
    client: TestClient, session_factory: sessionmaker[Session], acme: Tenant
) -> None:
    hello = _text(session_factory, acme, "hello there")
    revoke = _text(session_factory, acme, "please stop texting me")
    stranger = _text(session_factory, acme, "who is this?", phone="+14158675301")
    body = client.get(URL, headers=acme.headers).json()
    assert [r["id"] for r in body["data"]] == [stranger, revoke, hello]
    first = body["data"][1]
    assert (first["action"], first["outcome"], first["awaiting_review"]) == (
        "review",
        "awaiting review",
        True,
    )
    assert (first["contact_id"], first["from_number"]) == (acme.contact_id, ACME_PHONE)
    assert first["to_number"] == "+1415•••0000"  # the account's number, masked
    assert body["data"][0]["contact_id"] is None

    def ids(**params: Any) -> list[int]:
        return _ids(client.get(URL, headers=acme.headers, params=params))

    assert ids(review=True) == [revoke]
    assert ids(review=False) == [stranger, hello]
    assert ids(contact_id=acme.contact_id) == [revoke, hello]
    assert ids(contact_id=acme.contact_id, review=False) == [hello]


def test_it_pages_through_every_text_once(
    client: TestClient, session_factory: sessionmaker[Session], acme: Tenant
) -> None:
    made = [_text(session_factory, acme, f"hello {n}") for n in range(5)]
    first = client.get(URL, headers=acme.headers, params={"limit": 2}).json()
    seen = [r["id"] for r in first["data"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = client.get(URL, headers=acme.headers, params={"limit": 2, "cursor": cursor}).json()
        seen += [r["id"] for r in page["data"]]
        cursor = page["next_cursor"]
    assert seen == sorted(made, reverse=True)
    response = client.get(URL, headers=acme.headers, params={"cursor": "zz"})
    assert problem_of(response, 422, "invalid_input")["field"] == "cursor"


def test_it_shows_one_text(
    client: TestClient, session_factory: sessionmaker[Session], acme: Tenant
) -> None:
    stop = _text(session_factory, acme, "STOP")
    body = client.get(f"{URL}/{stop}", headers=acme.headers).json()
    assert (body["id"], body["action"], body["outcome"]) == (stop, "opt_out", "opted out (keyword)")
    problem_of(client.get(f"{URL}/{stop + 1}", headers=acme.headers), 404, "not_found")


def test_it_opts_out_on_review_canceling_what_is_pending(
    client: TestClient, session: Session, session_factory: sessionmaker[Session], acme: Tenant
) -> None:
    account, contact = session.get(Account, acme.account_id), session.get(Contact, acme.contact_id)
    assert account is not None and contact is not None
    pending = queue_message(session, account, contact).id
    revoke = _text(session_factory, acme, "please stop texting me")
    decision = {"decision": "opt_out", "by": "Grace"}
    response = client.post(f"{URL}/{revoke}/review", headers=acme.headers, json=decision)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["consent_event_id"] is not None and body["canceled"] == 1
    reply = body["reply"]
    assert (reply["review_decision"], reply["reviewed_by"], reply["awaiting_review"]) == (
        "opt_out",
        "Grace",
        False,
    )
    assert reply["outcome"] == "opted out by Grace (review)"
    assert message(session, pending).status == "canceled"
    session.refresh(contact)
    assert contact.sms_consent == "opted_out"
    balance = Credits(session, acme.account_id).balance()
    session.commit()
    assert (balance.available, balance.reserved) == (1000, 0)
    assert_ledger_ok(session, acme.account_id)
    again = client.post(f"{URL}/{revoke}/review", headers=acme.headers, json=decision)
    problem_of(again, 409, "already_reviewed")
    assert _ids(client.get(URL, headers=acme.headers, params={"review": True})) == []


def test_it_closes_a_review_that_is_not_an_opt_out(
    client: TestClient, session: Session, session_factory: sessionmaker[Session], acme: Tenant
) -> None:
    revoke = _text(session_factory, acme, "I want you to stop sending these")
    decision = {"decision": "not_opt_out", "by": "Grace"}
    body = client.post(f"{URL}/{revoke}/review", headers=acme.headers, json=decision).json()
    assert (body["consent_event_id"], body["canceled"]) == (None, 0)
    assert body["reply"]["outcome"] == "not an opt-out, by Grace (review)"
    contact = session.get(Contact, acme.contact_id)
    assert contact is not None and contact.sms_consent == "opted_in"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"decision": "maybe", "by": "Grace"}, "decision"),
        ({"decision": "opt_out"}, "by"),
        ({"decision": "opt_out", "by": ""}, "by"),
        ({"decision": "opt_out", "by": "x" * 101}, "by"),
    ],
)
def test_it_refuses_a_bad_decision_with_422(
    client: TestClient,
    session_factory: sessionmaker[Session],
    acme: Tenant,
    payload: dict[str, Any],
    field: str,
) -> None:
    revoke = _text(session_factory, acme, "please stop texting me")
    response = client.post(f"{URL}/{revoke}/review", headers=acme.headers, json=payload)
    assert problem_of(response, 422, "invalid_input")["field"] == field


def test_it_refuses_to_review_a_text_not_flagged(
    client: TestClient, session_factory: sessionmaker[Session], acme: Tenant
) -> None:
    hello = _text(session_factory, acme, "hello there")
    decision = {"decision": "opt_out", "by": "Grace"}
    response = client.post(f"{URL}/{hello}/review", headers=acme.headers, json=decision)
    problem_of(response, 422, "not_for_review")


def test_it_answers_404_for_another_accounts_text_on_every_route(
    client: TestClient,
    session: Session,
    session_factory: sessionmaker[Session],
    acme: Tenant,
    globex: Tenant,
) -> None:
    revoke = _text(session_factory, acme, "please stop texting me")
    theirs = _text(session_factory, globex, "hello", phone="+14158675308")
    g = globex.headers
    problem_of(client.get(f"{URL}/{revoke}", headers=g), 404, "not_found")
    decision = {"decision": "opt_out", "by": "Mallory"}
    problem_of(client.post(f"{URL}/{revoke}/review", headers=g, json=decision), 404, "not_found")
    assert _ids(client.get(URL, headers=g)) == [theirs]
    assert _ids(client.get(URL, headers=g, params={"review": True})) == []
    assert _ids(client.get(URL, headers=g, params={"contact_id": acme.contact_id})) == []
    contact = session.get(Contact, acme.contact_id)
    assert contact is not None and contact.sms_consent == "opted_in"
    session.commit()  # on SQLite an open transaction would hold the write lock
    assert _ids(client.get(URL, headers=acme.headers, params={"review": True})) == [revoke]
