"""/api/v1 through HTTP on both databases: the key dependency (401 problem details with
WWW-Authenticate), errors as RFC 9457 problem+json naming the code and field, the
account and events resources, and tenant isolation (another account's contact is 404)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendline import errors
from sendline.api.problems import status_of
from sendline.engine.definitions import InvalidAutomation
from sendline.services import automations
from sendline.services.api_keys import create_key, list_keys, revoke_key
from tests.api.conftest import Tenant

SHIP = "name: Ship\ntrigger: {type: event, name: shipped}\nsteps: [{type: send_sms, body: Hi}]"


def problem_of(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"] == f"urn:sendline:problem:{code}"
    return body


def unauthorized(response: Response) -> None:
    problem_of(response, 401, "invalid_api_key")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer sl_live_nope", "Basic dXNlcjpwdw==", "sl_live_x"],
)
def test_it_refuses_a_missing_or_unknown_key_with_401(
    client: TestClient, acme: Tenant, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    unauthorized(client.get("/api/v1/account", headers=headers))
    unauthorized(client.post("/api/v1/events", headers=headers, json={}))


def test_it_refuses_a_revoked_key_with_401(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    assert client.get("/api/v1/account", headers=acme.headers).status_code == 200
    revoke_key(session_factory, str(list_keys(session_factory, "Acme")[0].id))
    unauthorized(client.get("/api/v1/account", headers=acme.headers))


def test_it_refuses_an_admin_key_on_an_account_route(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    admin = create_key(session_factory, None, "ops", admin=True).key
    response = client.get("/api/v1/account", headers={"Authorization": f"Bearer {admin}"})
    problem_of(response, 403, "account_key_required")


def test_it_shows_the_keys_account_settings(
    client: TestClient, acme: Tenant, globex: Tenant
) -> None:
    for tenant, name in ((acme, "Acme"), (globex, "Globex")):
        body = client.get("/api/v1/account", headers=tenant.headers).json()
        assert (body["id"], body["name"]) == (tenant.account_id, name)
        assert body["quiet_hours"] == "00:00-24:00"
        assert body["credits"]["available"] == 1000
        assert body["sms_state"] == "enabled"


def test_it_starts_a_run_for_an_event_and_says_why_when_none(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    event = {"name": "shipped", "contact_id": acme.contact_id, "payload": {"order": "A-1"}}
    none = client.post("/api/v1/events", headers=acme.headers, json=event)
    assert none.status_code == 202, none.text
    assert none.json() == {
        "name": "shipped",
        "contact_id": acme.contact_id,
        "started": 0,
        "reasons": ["no automation listens to event 'shipped'"],
    }
    automations.create_automation(session_factory, "Acme", SHIP)
    automations.change_status(session_factory, "Acme", "Ship", "activate")
    by_email = {"name": "shipped", "email": "ada@acme.example"}
    started = client.post("/api/v1/events", headers=acme.headers, json=by_email)
    assert started.status_code == 202, started.text
    assert (started.json()["started"], started.json()["reasons"]) == (1, [])


def test_it_answers_404_for_another_accounts_contact(
    client: TestClient, acme: Tenant, globex: Tenant, session_factory: sessionmaker[Session]
) -> None:
    automations.create_automation(session_factory, "Globex", SHIP)
    automations.change_status(session_factory, "Globex", "Ship", "activate")
    for ref in ({"contact_id": globex.contact_id}, {"email": "ada@globex.example"}):
        response = client.post(
            "/api/v1/events", headers=acme.headers, json={"name": "shipped"} | ref
        )
        body = problem_of(response, 404, "not_found")
        assert "Globex" not in body["detail"]
    # Globex's own key reaches it: the 404 above was isolation, not a missing contact.
    own = {"name": "shipped", "contact_id": globex.contact_id}
    assert client.post("/api/v1/events", headers=globex.headers, json=own).json()["started"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"contact_id": 1}, "name"),
        ({"name": "", "contact_id": 1}, "name"),
        ({"name": "a b", "contact_id": 1}, "name"),
        ({"name": "x", "contact_id": "abc"}, "contact_id"),
        ({"name": "x", "contact_id": 10**30}, "contact_id"),
        ({"name": "x", "email": "not-an-email"}, "email"),
        ({"name": "x", "contact_id": 1, "payload": [1]}, "payload"),
    ],
)
def test_it_names_the_field_of_an_invalid_event_with_422(
    client: TestClient, acme: Tenant, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/events", headers=acme.headers, json=body)
    assert problem_of(response, 422, "invalid_input")["field"] == field


def test_it_refuses_an_event_with_no_contact_or_two(client: TestClient, acme: Tenant) -> None:
    for body in ({"name": "x"}, {"name": "x", "contact_id": 1, "email": "a@b.c"}):
        response = client.post("/api/v1/events", headers=acme.headers, json=body)
        assert "exactly one" in problem_of(response, 422, "invalid_input")["detail"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_it_answers_422_not_500_for_a_malformed_body(
    client: TestClient, acme: Tenant, raw: bytes
) -> None:
    headers = acme.headers | {"Content-Type": "application/json"}
    response = client.post("/api/v1/events", headers=headers, content=raw)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_it_answers_unknown_routes_under_the_api_as_problems(
    client: TestClient, acme: Tenant
) -> None:
    problem_of(client.get("/api/v1/nothing", headers=acme.headers), 404, "not_found")
    problem_of(client.delete("/api/v1/account", headers=acme.headers), 405, "method_not_allowed")


def test_it_documents_the_api_in_openapi(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/api/v1/account", "/api/v1/events"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


def test_it_maps_every_domain_error_to_a_4xx_unless_the_server_is_at_fault() -> None:
    server_side = {"pending_migrations", "database_unavailable", "config_error"}
    for kind in [errors.SendlineError, *vars(errors).values()]:
        if isinstance(kind, type) and issubclass(kind, errors.SendlineError):
            status = status_of(kind("x"))
            assert (500 <= status) == (kind.code in server_side), kind
            assert status != 500, kind
    assert status_of(errors.InsufficientCredits("x")) == 402
    assert status_of(InvalidAutomation("x")) == 422


@pytest.mark.parametrize(
    ("payload", "stored_by_postgres"),
    [({"note": "a\u0000b"}, False), ({"deep": {"x": ["\u0000"]}}, False), ({"n": 10**30}, True)],
)
def test_it_answers_422_for_values_the_database_cannot_store(
    client: TestClient,
    acme: Tenant,
    engine: Engine,
    session_factory: sessionmaker[Session],
    payload: dict[str, Any],
    stored_by_postgres: bool,
) -> None:
    """PostgreSQL refuses NUL in JSON; SQLite stores it. Either way, never a 500."""
    automations.create_automation(session_factory, "Acme", SHIP)
    automations.change_status(session_factory, "Acme", "Ship", "activate")
    response = client.post(
        "/api/v1/events",
        headers=acme.headers,
        json={"name": "shipped", "contact_id": acme.contact_id, "payload": payload},
    )
    if engine.dialect.name == "sqlite" or stored_by_postgres:
        assert response.status_code == 202, response.text
    else:
        detail = problem_of(response, 422, "invalid_input")["detail"]
        assert detail.startswith("a value could not be stored: ")
