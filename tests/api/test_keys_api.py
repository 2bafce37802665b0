"""/api/v1/keys and the admin's key routes on both databases: listing shows prefixes,
never a key; a key revokes its account's keys (itself included) and no other's."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from sendline.services.api_keys import create_key
from tests.api.conftest import Tenant
from tests.api.test_v1 import problem_of, unauthorized


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_it_lists_the_accounts_keys_by_prefix_newest_first(
    client: TestClient, acme: Tenant, globex: Tenant, session_factory: sessionmaker[Session]
) -> None:
    second = create_key(session_factory, "Acme", "crm")

    response = client.get("/api/v1/keys", headers=acme.headers)

    assert response.status_code == 200, response.text
    listed = response.json()["data"]
    assert [k["name"] for k in listed] == ["crm", "tests"]
    assert listed[0]["prefix"] == second.key[:12]
    assert second.key not in response.text and acme.key not in response.text
    assert globex.key[:12] not in response.text


def test_it_revokes_a_key_of_the_account_at_once(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    second = create_key(session_factory, "Acme", "crm")
    assert client.get("/api/v1/account", headers=_bearer(second.key)).status_code == 200

    revoked = client.delete(f"/api/v1/keys/{second.view.id}", headers=acme.headers)

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    unauthorized(client.get("/api/v1/account", headers=_bearer(second.key)))
    assert client.get("/api/v1/account", headers=acme.headers).status_code == 200


def test_it_lets_a_key_revoke_itself(client: TestClient, acme: Tenant) -> None:
    mine = client.get("/api/v1/keys", headers=acme.headers).json()["data"][0]["id"]
    assert client.delete(f"/api/v1/keys/{mine}", headers=acme.headers).status_code == 200
    unauthorized(client.get("/api/v1/account", headers=acme.headers))


def test_it_answers_404_for_another_accounts_key_and_keeps_it(
    client: TestClient, acme: Tenant, globex: Tenant
) -> None:
    theirs = client.get("/api/v1/keys", headers=globex.headers).json()["data"][0]["id"]

    refused = client.delete(f"/api/v1/keys/{theirs}", headers=acme.headers)

    problem_of(refused, 404, "not_found")
    assert client.get("/api/v1/account", headers=globex.headers).status_code == 200
    problem_of(client.delete("/api/v1/keys/2147483647", headers=acme.headers), 404, "not_found")


def test_it_lets_the_admin_list_and_revoke_any_accounts_keys(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    admin = _bearer(create_key(session_factory, None, "ops", admin=True).key)
    problem_of(client.get("/api/v1/keys", headers=admin), 403, "account_key_required")
    refused = client.get(f"/api/v1/admin/accounts/{acme.account_id}/keys", headers=acme.headers)
    problem_of(refused, 403, "admin_key_required")

    listed = client.get(f"/api/v1/admin/accounts/{acme.account_id}/keys", headers=admin)
    assert [k["name"] for k in listed.json()["data"]] == ["tests"]
    key_id = listed.json()["data"][0]["id"]
    assert client.delete(f"/api/v1/admin/keys/{key_id}", headers=admin).status_code == 200

    unauthorized(client.get("/api/v1/account", headers=acme.headers))
