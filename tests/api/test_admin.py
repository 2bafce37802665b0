"""/api/v1/admin on both databases: an admin key creates an account and a key that then
works on /api/v1/account, lists accounts page by page and changes a plan; an account's
key is 403 `admin_key_required` on every admin route."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from sendline.services.api_keys import create_key
from tests.api.conftest import Tenant
from tests.api.test_v1 import problem_of

NEW = {
    "name": "Initech",
    "product_line": "marketing",
    "tier": "professional",
    "last_purchase_on": "2025-02-01",
    "sms_addon": True,
    "quiet_hours": "09:00-20:00",
    "max_segments": 2,
    "credit_rates": {"default": 1, "GB": 2},
}


@pytest.fixture
def admin(session_factory: sessionmaker[Session]) -> dict[str, str]:
    key = create_key(session_factory, None, "ops", admin=True).key
    return {"Authorization": f"Bearer {key}"}


def _names(client: TestClient, admin: dict[str, str], limit: int = 200) -> list[str]:
    names: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = client.get("/api/v1/admin/accounts", headers=admin, params=params)
        assert response.status_code == 200, response.text
        names += [account["name"] for account in response.json()["data"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return names


def test_it_creates_an_account_and_a_key_that_works_on_it(
    client: TestClient, admin: dict[str, str]
) -> None:
    created = client.post("/api/v1/admin/accounts", headers=admin, json=NEW)
    assert created.status_code == 201, created.text
    account = created.json()
    assert (account["name"], account["tier"], account["cohort"]) == (
        "Initech",
        "professional",
        "current",
    )
    assert (account["quiet_hours"], account["max_segments"]) == ("09:00-20:00", 2)
    assert account["credit_rates"] == {"default": 1, "GB": 2}
    assert account["credits"]["available"] == 0

    key = client.post(
        f"/api/v1/admin/accounts/{account['id']}/keys", headers=admin, json={"name": "crm"}
    )
    assert key.status_code == 201, key.text
    shown = key.json()
    assert (shown["account_id"], shown["kind"], shown["name"]) == (account["id"], "account", "crm")
    assert shown["key"].startswith(shown["prefix"])
    headers = {"Authorization": f"Bearer {shown['key']}"}
    mine = client.get("/api/v1/account", headers=headers)
    assert mine.status_code == 200, mine.text
    assert mine.json() == account


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"tier": "gold"}, 422, "invalid_input", "tier"),
        ({"product_line": "support"}, 422, "invalid_input", "product_line"),
        ({"last_purchase_on": "someday"}, 422, "invalid_input", "last_purchase_on"),
        ({"optout_clause": "Hi!"}, 422, "invalid_optout_clause", "optout_clause"),
        ({"credit_rates": {"GBX": 2}}, 422, "invalid_input", "credit_rates"),
        ({"name": ""}, 422, "invalid_input", "name"),
        ({"name": "Bad\x00name"}, 422, "invalid_input", "name"),
        ({"name": "Acme"}, 409, "conflict", None),
    ],
)
def test_it_creates_nothing_from_a_bad_account(
    client: TestClient,
    admin: dict[str, str],
    acme: Tenant,
    change: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    response = client.post("/api/v1/admin/accounts", headers=admin, json=NEW | change)
    assert problem_of(response, status, code).get("field") == field
    assert _names(client, admin) == ["Acme"]


def test_it_lists_accounts_newest_first_page_by_page(
    client: TestClient, admin: dict[str, str], acme: Tenant, globex: Tenant
) -> None:
    for n in range(3):
        response = client.post(
            "/api/v1/admin/accounts", headers=admin, json=NEW | {"name": f"A{n}"}
        )
        assert response.status_code == 201, response.text
    expected = ["A2", "A1", "A0", "Globex", "Acme"]
    assert _names(client, admin) == expected
    assert _names(client, admin, limit=2) == expected


def test_it_changes_an_accounts_plan_all_or_nothing(
    client: TestClient, admin: dict[str, str], acme: Tenant
) -> None:
    path = f"/api/v1/admin/accounts/{acme.account_id}"
    bad = client.patch(path, headers=admin, json={"tier": "lite", "max_segments": 20})
    assert problem_of(bad, 422, "invalid_input")["field"] == "max_segments"
    assert client.get("/api/v1/account", headers=acme.headers).json()["tier"] == "plus"
    good = client.patch(path, headers=admin, json={"tier": "lite", "credit_rates": {"GB": 3}})
    assert good.status_code == 200, good.text
    seen = client.get("/api/v1/account", headers=acme.headers).json()
    assert (seen["tier"], seen["sms_state"]) == ("lite", "refused (sms_not_in_plan)")
    assert seen["credit_rates"] == {"default": 1, "GB": 3}


def test_it_answers_404_for_an_account_that_does_not_exist(
    client: TestClient, admin: dict[str, str]
) -> None:
    for response in (
        client.post("/api/v1/admin/accounts/4242/keys", headers=admin, json={"name": "x"}),
        client.patch("/api/v1/admin/accounts/4242", headers=admin, json={"tier": "plus"}),
    ):
        problem_of(response, 404, "not_found")


def test_it_refuses_an_account_key_on_every_admin_route(
    client: TestClient, admin: dict[str, str], acme: Tenant, globex: Tenant
) -> None:
    calls = [
        ("POST", "/api/v1/admin/accounts", NEW),
        ("GET", "/api/v1/admin/accounts", None),
        ("PATCH", f"/api/v1/admin/accounts/{globex.account_id}", {"tier": "enterprise"}),
        ("POST", f"/api/v1/admin/accounts/{globex.account_id}/keys", {"name": "mine now"}),
        ("POST", f"/api/v1/admin/accounts/{acme.account_id}/keys", {"name": "another"}),
    ]
    for method, path, body in calls:
        response = client.request(method, path, headers=acme.headers, json=body)
        problem_of(response, 403, "admin_key_required")
        problem_of(client.request(method, path, json=body), 401, "invalid_api_key")
    assert _names(client, admin) == ["Globex", "Acme"]
    assert client.get("/api/v1/account", headers=globex.headers).json()["tier"] == "plus"
