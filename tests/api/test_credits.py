"""/api/v1/credits on both databases: the balance, a purchase and the ledger that then
shows it (newest first, page by page), the bounds on a purchase, R2's add-on rule, and
each account seeing only its own ledger."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from sendline.services.api_keys import create_key
from sendline.store.accounts import Accounts
from tests.api.conftest import Tenant
from tests.api.test_v1 import problem_of


def _ledger(client: TestClient, tenant: Tenant, limit: int = 200) -> list[dict[str, Any]]:
    """Every ledger line, page after page."""
    lines: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = client.get("/api/v1/credits/ledger", headers=tenant.headers, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= limit
        lines += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return lines


def test_it_shows_the_balance(client: TestClient, acme: Tenant) -> None:
    response = client.get("/api/v1/credits", headers=acme.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"free": 0, "purchased": 1000, "reserved": 0, "available": 1000}


def test_it_records_a_purchase_that_the_ledger_then_shows_first(
    client: TestClient, acme: Tenant
) -> None:
    purchase = {"credits": 250, "note": "invoice 7"}
    response = client.post("/api/v1/credits/purchases", headers=acme.headers, json=purchase)
    assert response.status_code == 201, response.text
    body = response.json()
    entry = body["entry"]
    assert (entry["kind"], entry["amount"], entry["about"]) == ("purchase", 250, "invoice 7")
    assert (entry["free_delta"], entry["purchased_delta"], entry["reserved_delta"]) == (0, 250, 0)
    assert body["balance"] == {"free": 0, "purchased": 1250, "reserved": 0, "available": 1250}
    assert client.get("/api/v1/credits", headers=acme.headers).json() == body["balance"]
    ledger = _ledger(client, acme)
    assert ledger[0] == entry
    # The fixture's own purchase of 1000 is the older line.
    assert [(line["kind"], line["amount"]) for line in ledger] == [
        ("purchase", 250),
        ("purchase", 1000),
    ]


def test_it_pages_the_ledger_newest_first_without_gaps_or_repeats(
    client: TestClient, acme: Tenant
) -> None:
    for amount in range(1, 8):
        response = client.post(
            "/api/v1/credits/purchases", headers=acme.headers, json={"credits": amount}
        )
        assert response.status_code == 201, response.text
    every = _ledger(client, acme, limit=200)
    paged = _ledger(client, acme, limit=3)
    assert paged == every
    assert [line["amount"] for line in every] == [7, 6, 5, 4, 3, 2, 1, 1000]
    ids = [line["id"] for line in every]
    assert ids == sorted(ids, reverse=True)
    first = client.get("/api/v1/credits/ledger", headers=acme.headers, params={"limit": 8})
    assert first.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("purchase", "field"),
    [
        ({"credits": 0}, "credits"),
        ({"credits": -5}, "credits"),
        ({"credits": 10_000_001}, "credits"),
        ({"credits": 10**30}, "credits"),
        ({"credits": "ten"}, "credits"),
        ({"credits": 1.5}, "credits"),
        ({}, "credits"),
        ({"credits": 5, "note": "x" * 201}, "note"),
        ({"credits": 5, "note": "inv\x007"}, "note"),
    ],
)
def test_it_bounds_a_purchase_and_writes_nothing_out_of_bounds(
    client: TestClient, acme: Tenant, purchase: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/credits/purchases", headers=acme.headers, json=purchase)
    assert problem_of(response, 422, "invalid_input")["field"] == field
    assert len(_ledger(client, acme)) == 1


def test_it_refuses_a_purchase_without_the_sms_addon(
    client: TestClient, acme: Tenant, session: Session
) -> None:
    Accounts(session).change_plan(acme.account_id, sms_addon=False)
    session.commit()
    response = client.post("/api/v1/credits/purchases", headers=acme.headers, json={"credits": 5})
    problem_of(response, 403, "sms_addon_required")
    assert len(_ledger(client, acme)) == 1


def test_it_refuses_a_cursor_it_did_not_give(client: TestClient, acme: Tenant) -> None:
    for cursor in ("nope", "djE6MA", "x" * 65):
        response = client.get(
            "/api/v1/credits/ledger", headers=acme.headers, params={"cursor": cursor}
        )
        assert problem_of(response, 422, "invalid_input")["field"] == "cursor"


def test_it_shows_each_account_only_its_own_credits(
    client: TestClient, acme: Tenant, globex: Tenant, session_factory: sessionmaker[Session]
) -> None:
    client.post(
        "/api/v1/credits/purchases", headers=acme.headers, json={"credits": 40, "note": "acme"}
    )
    acme_ids = {line["id"] for line in _ledger(client, acme)}
    globex_lines = _ledger(client, globex)
    assert [(line["amount"], line["about"]) for line in globex_lines] == [(1000, "")]
    assert acme_ids.isdisjoint(line["id"] for line in globex_lines)
    # A cursor made from Acme's newest line shows Globex only its own older lines.
    newest = client.get("/api/v1/credits/ledger", headers=acme.headers, params={"limit": 1})
    cursor = newest.json()["next_cursor"]
    page = client.get("/api/v1/credits/ledger", headers=globex.headers, params={"cursor": cursor})
    assert {line["id"] for line in page.json()["data"]} <= {line["id"] for line in globex_lines}
    assert client.get("/api/v1/credits", headers=globex.headers).json()["available"] == 1000
    # An admin key has no credits of its own.
    admin = create_key(session_factory, None, "ops", admin=True).key
    response = client.get("/api/v1/credits", headers={"Authorization": f"Bearer {admin}"})
    problem_of(response, 403, "account_key_required")
